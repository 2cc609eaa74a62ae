// A package loaded on first use instead of at import. Every command module imports the libraries
// its work needs; loading tfjs, sharp and protobufjs up front cost each process ~0.3 s of CPU even
// when it stopped at a usage error or never used them (the test suite starts ~600 processes).
import { createRequire } from 'node:module';

const requireHere = createRequire(import.meta.url);

/**
 * A stand-in for `require(specifier)`: property reads, calls and `new` on it load the package
 * (once) and go to the real export. `loaded` runs right after the package loads.
 */
export function lazyModule<T extends object>(specifier: string, loaded?: (module: T) => void): T {
  let module: T | undefined;
  const load = (): T => {
    if (module) return module;
    module = requireHere(specifier) as T;
    loaded?.(module);
    return module;
  };
  // A function target, so that a package whose export is a function (sharp) can be called.
  return new Proxy(function lazy() {} as unknown as T, {
    get: (_target, key) => Reflect.get(load(), key),
    has: (_target, key) => Reflect.has(load(), key),
    apply: (_target, self, args) => Reflect.apply(load() as (...a: unknown[]) => unknown, self, args),
    construct: (_target, args, newTarget) => Reflect.construct(load() as new (...a: unknown[]) => object, args, newTarget === _target ? (load() as new (...a: unknown[]) => object) : newTarget),
  });
}
