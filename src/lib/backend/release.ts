// What must be let go before the process can exit (a GPU device keeps Node's loop alive).
// No tfjs here: the CLI calls `releaseAll` after every command without loading a backend.
const releases = new Set<() => void | Promise<void>>();

/** Registers `fn` to run once at the end of the command; returns a function that unregisters it. */
export function onRelease(fn: () => void | Promise<void>): () => void {
  releases.add(fn);
  return () => releases.delete(fn);
}

/** Runs every registered release; one that throws does not stop the others. */
export async function releaseAll(): Promise<void> {
  const fns = [...releases];
  releases.clear();
  for (const fn of fns) {
    try {
      await fn();
    } catch {
      // exiting matters more than a clean release
    }
  }
}
