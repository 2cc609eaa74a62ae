// What a GPU box has installed, found without loading any of it: the shared libraries the GPU
// backends need (from `ldconfig -p` and LD_LIBRARY_PATH), the NVIDIA driver, the Vulkan ICDs.
// Nothing here throws: a missing tool or file is an absent entry.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';

export interface FoundLibrary {
  /** The soname asked for, e.g. libcudart.so.12. */
  soname: string;
  path: string;
  /** Version read from the file the soname resolves to (libcudart.so.12.4.127 -> 12.4.127). */
  version: string | null;
}

/** Every soname -> path the dynamic loader knows: the ldconfig cache, then LD_LIBRARY_PATH. */
export function loaderLibraries(env: NodeJS.ProcessEnv = process.env): Map<string, string> {
  const found = new Map<string, string>();
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) if (/\.so(\.|$)/.test(name) && !found.has(name)) found.set(name, join(dir, name));
  }
  for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    let text: string;
    try {
      text = execFileSync(ldconfig, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    } catch {
      continue;
    }
    // "	libcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12"
    for (const m of text.matchAll(/^\s*(\S+) \(([^)]*)\) => (\S+)$/gm)) {
      if (process.arch === 'x64' && !m[2].includes('x86-64')) continue;
      if (!found.has(m[1])) found.set(m[1], m[3]);
    }
    break;
  }
  return found;
}

/** Libraries whose soname starts with `stem` (e.g. 'libcudnn.so'), newest first, one per file. */
export function findLibraries(stem: string, libraries: Map<string, string>): FoundLibrary[] {
  const byFile = new Map<string, FoundLibrary>();
  // One file has several names (libcudnn.so, .so.8, .so.8.1.0): the major soname is the one the loader asks for.
  const rank = (soname: string) => (/\.so\.\d+$/.test(soname) ? 0 : /\.so$/.test(soname) ? 2 : 1);
  for (const [soname, path] of libraries) {
    if (!soname.startsWith(stem)) continue;
    let real = path;
    try {
      real = realpathSync(path);
    } catch {
      // a dangling link still says which version was meant
    }
    const m = /\.so\.(\d+(?:\.\d+)*)$/.exec(real) ?? /\.so\.(\d+(?:\.\d+)*)$/.exec(soname);
    const seen = byFile.get(real);
    if (!seen || rank(soname) < rank(seen.soname)) byFile.set(real, { soname, path, version: m ? m[1] : null });
  }
  return [...byFile.values()].sort((a, b) => b.soname.localeCompare(a.soname, 'en', { numeric: true }));
}

export interface GpuSystem {
  nvidiaDriver: string | null;
  cudaRuntime: FoundLibrary[];
  cudnn: FoundLibrary[];
  vulkanLoader: FoundLibrary[];
  /** Vulkan ICD manifests (nvidia_icd.json is the NVIDIA driver's). */
  vulkanIcds: string[];
}

function nvidiaDriverVersion(): string | null {
  try {
    // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  ..."
    const m = /Kernel Module\s+(\d+(?:\.\d+)+)/.exec(readFileSync('/proc/driver/nvidia/version', 'utf8'));
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

function vulkanIcds(env: NodeJS.ProcessEnv): string[] {
  const files: string[] = [];
  for (const f of (env.VK_ICD_FILENAMES ?? env.VK_DRIVER_FILES ?? '').split(':').filter(Boolean)) if (existsSync(f)) files.push(f);
  for (const dir of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']) {
    try {
      for (const name of readdirSync(dir)) if (name.endsWith('.json')) files.push(join(dir, name));
    } catch {
      // no such directory
    }
  }
  return files;
}

/** The GPU stack found on this machine (Linux; elsewhere mostly empty). */
export function scanGpuSystem(env: NodeJS.ProcessEnv = process.env): GpuSystem {
  const libs = loaderLibraries(env);
  return {
    nvidiaDriver: nvidiaDriverVersion(),
    cudaRuntime: findLibraries('libcudart.so', libs),
    cudnn: findLibraries('libcudnn.so', libs),
    vulkanLoader: findLibraries('libvulkan.so', libs),
    vulkanIcds: vulkanIcds(env),
  };
}
