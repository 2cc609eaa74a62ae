// What every benchmark records beside its numbers: the machine, the load average, and the memory of
// a process sampled from /proc (Linux), so figures from a shared machine can be judged.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const outDir = join(repoRoot, 'bench', 'out');
export const PYTHON = '/usr/bin/python3';

export function machineInfo(): Record<string, unknown> {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // Not Linux: the model stays unknown.
  }
  return {
    nproc: cpus().length,
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown',
    cpuFlags: ['avx2', 'avx512f', 'fma'].filter((flag) => new RegExp(`\\b${flag}\\b`).test(cpuinfo)),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function loadAverage(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}

/** VmRSS and VmHWM (peak RSS) of a process in bytes, or null once it has exited. */
export function processMemory(pid: number): { rss: number; peak: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** Samples a process's RSS every `everyMs` until stopped; returns the samples and the last peak seen. */
export function sampleMemory(pid: number, everyMs = 100): { stop(): { samples: Array<{ t: number; rss: number }>; peak: number } } {
  const started = performance.now();
  const samples: Array<{ t: number; rss: number }> = [];
  let peak = 0;
  const take = () => {
    const m = processMemory(pid);
    if (!m || !Number.isFinite(m.rss)) return;
    samples.push({ t: Math.round(performance.now() - started) / 1000, rss: m.rss });
    if (Number.isFinite(m.peak) && m.peak > peak) peak = m.peak;
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      take();
      clearInterval(timer);
      return { samples, peak };
    },
  };
}

export const MiB = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

export function writeResults(file: string, data: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
}

/** The named settings of a comma-separated --settings list, in its order; an unknown name throws. */
export function pickSettings<T>(list: string, known: Record<string, T>): T[] {
  return list.split(',').map((name) => {
    const setting = known[name.trim()];
    if (!setting) throw new Error(`unknown setting ${name} (known: ${Object.keys(known).join(', ')})`);
    return setting;
  });
}

/** `--name value` from argv, else the fallback. */
export function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}
