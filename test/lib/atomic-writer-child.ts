// A writer the atomic-output tests kill with SIGKILL mid-write. Usage: node atomic-writer-child.js MODE DEST
//   stream: one atomic stream that keeps writing, never committed
//   file:   writeFileAtomic of a 16 MiB file, over and over
//   dir:    an atomic directory filled slowly, never committed
//   dirs:   atomic directories of two files committed over and over
//   npy:    a streaming .npy writer that keeps appending rows, never closed
// It prints "writing" once bytes are on disk, so the parent knows the kill lands mid-write.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicDirectory, openAtomicWriteStream, writeFileAtomic } from '../../src/lib/io/atomic.js';
import { waitForDrain } from '../../src/lib/io/ndjson.js';
import { openNpyWriter } from '../../src/lib/io/npy.js';

const [mode, dest] = process.argv.slice(2);
if (!mode || !dest) throw new Error('usage: atomic-writer-child MODE DEST');

let announced = false;
function announce(): void {
  if (!announced) process.stdout.write('writing\n');
  announced = true;
}

if (mode === 'stream') {
  const out = await openAtomicWriteStream(dest);
  const chunk = Buffer.alloc(64 * 1024, 'n');
  for (let written = 0; ; written += chunk.length) {
    if (!out.stream.write(chunk)) await waitForDrain(out.stream);
    if (written > 1024 * 1024) announce();
  }
} else if (mode === 'file') {
  const content = Buffer.alloc(16 * 1024 * 1024, 'n');
  for (;;) {
    const pending = writeFileAtomic(dest, content);
    announce();
    await pending;
  }
} else if (mode === 'dir') {
  const out = await atomicDirectory(dest);
  for (let i = 0; ; i++) {
    await writeFile(join(out.tmpDir, `part-${i}.txt`), 'new\n');
    announce();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
} else if (mode === 'dirs') {
  for (let generation = 0; ; generation++) {
    const out = await atomicDirectory(dest);
    await writeFile(join(out.tmpDir, 'a.txt'), `generation ${generation}\n`);
    await writeFile(join(out.tmpDir, 'b.txt'), `generation ${generation}\n`);
    await out.commit();
    announce();
  }
} else if (mode === 'npy') {
  const writer = await openNpyWriter(dest, { dtype: 'float32', rowShape: [256] });
  const rows = new Float32Array(256 * 64).fill(1.5);
  for (let i = 0; ; i++) {
    await writer.writeRows(rows);
    if (i > 32) announce();
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
