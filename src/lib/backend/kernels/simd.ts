// Small WebAssembly SIMD loops that run on the WASM backend's own heap, for the kernels whose
// inner loop XNNPACK does not ship and plain JS runs one float at a time. The module is written here
// as bytes (no compiler is needed at install: a fresh machine has none for wasm32) and instantiated
// against the backend's exported memory, so it reads and writes tensors in place, without a copy.
import { heapView, type BackendWasm } from './scratch.js';

/** The loops the module exports (pointers and steps are byte offsets into the backend's heap). */
export interface SimdLoops {
  /**
   * acc[c] += Σ_k x[k·xStep + c]·dy[k·dyStep + c] for c < 4·chunks, k < count: a depthwise filter
   * gradient's row of one tap, four channels at a time, each sum in a register.
   */
  dotRowsAccumulate(x: number, xStep: number, dy: number, dyStep: number, acc: number, chunks: number, count: number): void;
  /**
   * acc[c] += Σ_k (x[k·step + c] - centre[c])·dy[k·step + c] for c < 4·chunks, k < count: BatchNorm's
   * Σ dy·(x - mean) per channel, rows of x and dy `step` bytes apart.
   */
  centredDotRowsAccumulate(x: number, dy: number, step: number, centre: number, acc: number, chunks: number, count: number): void;
  /** acc[c] += Σ_k x[k·xStep + c] for c < 4·chunks, k < count: column sums of a row-major block. */
  sumRowsAccumulate(x: number, xStep: number, acc: number, chunks: number, count: number): void;
  /**
   * acc[r·accStep + c] += Σ_{i,k} x[i·xRowStep + k·xStep + r]·dy[i·dyRowStep + k·dyStep + c] for r < 4,
   * c < 8, k < cols, i < rows: a 4 x 8 tile of x^T·dy (a filter gradient's, for one filter tap) over a
   * grid of rows, with its 8 sums in registers, no packing.
   */
  outerGridAccumulate(x: number, xStep: number, xRowStep: number, dy: number, dyStep: number, dyRowStep: number, acc: number, accStep: number, cols: number, rows: number): void;
  /** out[i] = low <= x[i] <= high ? dy[i] : 0 for i < 4·chunks: ReLU6's (ClipByValue's) gradient. */
  clipGradient(x: number, dy: number, out: number, low: number, high: number, chunks: number): void;
}

/** Unsigned LEB128, as the binary format writes sizes, counts and indices. */
function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  return vector([...Buffer.from(text, 'utf8')].map((b) => [b]));
}

// Opcodes used below (WebAssembly core 2.0 and its SIMD proposal, now core).
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const OP = {
  block: 0x02, loop: 0x03, end: 0x0b, brIf: 0x0d, empty: 0x40,
  get: 0x20, set: 0x21, tee: 0x22, i32Const: 0x41, i32Eqz: 0x45, i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c,
};
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
// v128.load / v128.store with a 4-byte alignment hint (float rows) and offset 0.
const V128_LOAD = [...simd(0x00), 2, 0];
const V128_STORE = [...simd(0x0b), 2, 0];
const loadAt = (offset: number) => [...simd(0x00), 2, ...uleb(offset)];
const storeAt = (offset: number) => [...simd(0x0b), 2, ...uleb(offset)];
// v128.load32_splat: one float into all four lanes.
const splatAt = (offset: number) => [...simd(0x09), 2, ...uleb(offset)];
const F32X4_ADD = simd(0xe4);
const F32X4_MUL = simd(0xe6);
const F32X4_SUB = simd(0xe5);
const F32X4_SPLAT = simd(0x13);
const F32X4_LE = simd(0x45);
const F32X4_GE = simd(0x46);
const V128_AND = simd(0x4e);

const get = (i: number) => [OP.get, i];
const set = (i: number) => [OP.set, i];
const addConst = (i: number, c: number) => [...get(i), OP.i32Const, ...uleb(c), OP.i32Add, ...set(i)];

/**
 * The loop all three functions are: for each chunk of four channels, sum += term over `count` rows
 * (the term reads the row cursors and the vectors held for the chunk), then acc += sum.
 */
interface RowsLoop {
  acc: number;
  chunks: number;
  count: number;
  /** i32 local counting the rows down; v128 local of the running sum. */
  k: number;
  sum: number;
  /** Row pointers: the parameter that starts at the chunk, the row step (a parameter), the cursor local. */
  rows: Array<{ base: number; step: number; cursor: number }>;
  /** Per-chunk vectors loaded once into a v128 local (the centre of a centred product). */
  held: Array<{ base: number; register: number }>;
  /** Leaves the v128 to add for one row on the stack. */
  term: number[];
}

function rowsLoop(l: RowsLoop): number[] {
  return [
    OP.block, OP.empty,
    ...get(l.chunks), OP.i32Eqz, OP.brIf, 0,
    ...get(l.count), OP.i32Eqz, OP.brIf, 0,
    OP.loop, OP.empty, // over the channel chunks
    ...get(l.acc), ...V128_LOAD, ...set(l.sum),
    ...l.held.flatMap((h) => [...get(h.base), ...V128_LOAD, ...set(h.register)]),
    ...l.rows.flatMap((r) => [...get(r.base), ...set(r.cursor)]), ...get(l.count), ...set(l.k),
    OP.loop, OP.empty, // over the rows
    ...get(l.sum), ...l.term, ...F32X4_ADD, ...set(l.sum),
    ...l.rows.flatMap((r) => [...get(r.cursor), ...get(r.step), OP.i32Add, ...set(r.cursor)]),
    ...get(l.k), OP.i32Const, 1, OP.i32Sub, OP.tee, l.k, OP.brIf, 0,
    OP.end,
    ...get(l.acc), ...get(l.sum), ...V128_STORE,
    ...addConst(l.acc, 16), ...l.held.flatMap((h) => addConst(h.base, 16)), ...l.rows.flatMap((r) => addConst(r.base, 16)),
    ...get(l.chunks), OP.i32Const, 1, OP.i32Sub, OP.tee, l.chunks, OP.brIf, 0,
    OP.end,
    OP.end,
    OP.end, // the function
  ];
}

/** dotRowsAccumulate: parameters 0-6 x, xStep, dy, dyStep, acc, chunks, count; locals 7-9 (i32) xp, dp, k; 10 (v128) sum. */
function dotRowsBody(): number[] {
  const [x, xStep, dy, dyStep, acc, chunks, count, xp, dp, k, sum] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const term = [...get(xp), ...V128_LOAD, ...get(dp), ...V128_LOAD, ...F32X4_MUL];
  return rowsLoop({ acc, chunks, count, k, sum, rows: [{ base: x, step: xStep, cursor: xp }, { base: dy, step: dyStep, cursor: dp }], held: [], term });
}

/** centredDotRowsAccumulate: parameters 0-6 x, dy, step, centre, acc, chunks, count; locals 7-9 (i32) xp, dp, k; 10-11 (v128) sum, c. */
function centredDotRowsBody(): number[] {
  const [x, dy, step, centre, acc, chunks, count, xp, dp, k, sum, c] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const term = [...get(xp), ...V128_LOAD, ...get(c), ...F32X4_SUB, ...get(dp), ...V128_LOAD, ...F32X4_MUL];
  return rowsLoop({ acc, chunks, count, k, sum, rows: [{ base: x, step, cursor: xp }, { base: dy, step, cursor: dp }], held: [{ base: centre, register: c }], term });
}

/** sumRowsAccumulate: parameters 0-4 x, xStep, acc, chunks, count; locals 5-6 (i32) xp, k; 7 (v128) sum. */
function sumRowsBody(): number[] {
  const [x, xStep, acc, chunks, count, xp, k, sum] = [0, 1, 2, 3, 4, 5, 6, 7];
  return rowsLoop({ acc, chunks, count, k, sum, rows: [{ base: x, step: xStep, cursor: xp }], held: [], term: [...get(xp), ...V128_LOAD] });
}

/**
 * clipGradient: parameters 0-5 x, dy, out (i32), low, high (f32), chunks (i32); locals 6-8 (v128) v,
 * lowV, highV. The mask of low <= v <= high (all ones or zeros per lane) ANDed with dy's bits keeps
 * dy exactly where x is inside the bounds and +0 elsewhere, as the JS loop does (NaN x gives 0).
 */
function clipGradientBody(): number[] {
  const [x, dy, out, low, high, chunks, v, lowV, highV] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  return [
    OP.block, OP.empty,
    ...get(chunks), OP.i32Eqz, OP.brIf, 0,
    ...get(low), ...F32X4_SPLAT, ...set(lowV),
    ...get(high), ...F32X4_SPLAT, ...set(highV),
    OP.loop, OP.empty,
    ...get(out),
    ...get(x), ...V128_LOAD, ...set(v),
    ...get(v), ...get(lowV), ...F32X4_GE, ...get(v), ...get(highV), ...F32X4_LE, ...V128_AND,
    ...get(dy), ...V128_LOAD, ...V128_AND,
    ...V128_STORE,
    ...addConst(x, 16), ...addConst(dy, 16), ...addConst(out, 16),
    ...get(chunks), OP.i32Const, 1, OP.i32Sub, OP.tee, chunks, OP.brIf, 0,
    OP.end,
    OP.end,
    OP.end, // the function
  ];
}

/**
 * outerGridAccumulate: parameters 0-9 x, xStep, xRowStep, dy, dyStep, dyRowStep, acc, accStep, cols,
 * rows; locals 10-12 (i32) the x and dy cursors of a row and the column counter; 13-20 (v128) the 4 x 2
 * accumulators (row r, half h at 13 + 2r + h), 21-22 the two dy vectors, 23 the splatted x.
 */
function outerGridBody(): number[] {
  const [x, xStep, xRowStep, dy, dyStep, dyRowStep, acc, accStep, cols, rows, xp, dp, k] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const a = (r: number, h: number) => 13 + 2 * r + h;
  const [d0, d1, sx] = [21, 22, 23];
  const rowPointer = (r: number) => [...get(acc), ...get(accStep), OP.i32Const, r, OP.i32Mul, OP.i32Add];
  const tile = [0, 1, 2, 3].flatMap((r) => [0, 1].map((h) => [r, h] as const));
  return [
    OP.block, OP.empty,
    ...get(cols), OP.i32Eqz, OP.brIf, 0,
    ...get(rows), OP.i32Eqz, OP.brIf, 0,
    ...tile.flatMap(([r, h]) => [...rowPointer(r), ...loadAt(16 * h), ...set(a(r, h))]),
    OP.loop, OP.empty, // over the rows of the grid
    ...get(x), ...set(xp), ...get(dy), ...set(dp), ...get(cols), ...set(k),
    OP.loop, OP.empty, // along a row
    ...get(dp), ...loadAt(0), ...set(d0),
    ...get(dp), ...loadAt(16), ...set(d1),
    ...[0, 1, 2, 3].flatMap((r) => [
      ...get(xp), ...splatAt(4 * r), ...set(sx),
      ...get(a(r, 0)), ...get(sx), ...get(d0), ...F32X4_MUL, ...F32X4_ADD, ...set(a(r, 0)),
      ...get(a(r, 1)), ...get(sx), ...get(d1), ...F32X4_MUL, ...F32X4_ADD, ...set(a(r, 1)),
    ]),
    ...get(xp), ...get(xStep), OP.i32Add, ...set(xp),
    ...get(dp), ...get(dyStep), OP.i32Add, ...set(dp),
    ...get(k), OP.i32Const, 1, OP.i32Sub, OP.tee, k, OP.brIf, 0,
    OP.end,
    ...get(x), ...get(xRowStep), OP.i32Add, ...set(x),
    ...get(dy), ...get(dyRowStep), OP.i32Add, ...set(dy),
    ...get(rows), OP.i32Const, 1, OP.i32Sub, OP.tee, rows, OP.brIf, 0,
    OP.end,
    ...tile.flatMap(([r, h]) => [...rowPointer(r), ...get(a(r, h)), ...storeAt(16 * h)]),
    OP.end,
    OP.end, // the function
  ];
}

/** The module's bytes: the five loops on an imported memory env.memory. */
function moduleBytes(): Uint8Array<ArrayBuffer> {
  const i32s = (n: number) => vector(Array.from({ length: n }, () => [I32]));
  const entry = (locals: number[][], body: number[]) => {
    const code = [...vector(locals), ...body];
    return [...uleb(code.length), ...code];
  };
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    // Types: 0 = (7 x i32) -> (), 1 = (5 x i32) -> (), 2 = (3 x i32, 2 x f32, i32) -> (), 3 = (10 x i32) -> ().
    ...section(1, vector([
      [0x60, ...i32s(7), ...vector([])],
      [0x60, ...i32s(5), ...vector([])],
      [0x60, ...vector([[I32], [I32], [I32], [F32], [F32], [I32]]), ...vector([])],
      [0x60, ...i32s(10), ...vector([])],
    ])),
    // env.memory: a memory of at least 0 pages, no maximum (the backend's grows).
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vector([[0], [1], [0], [2], [3]])),
    ...section(7, vector([
      [...name('dotRowsAccumulate'), 0x00, 0], [...name('sumRowsAccumulate'), 0x00, 1],
      [...name('centredDotRowsAccumulate'), 0x00, 2], [...name('clipGradient'), 0x00, 3],
      [...name('outerGridAccumulate'), 0x00, 4],
    ])),
    ...section(10, vector([
      entry([[...uleb(3), I32], [...uleb(1), V128]], dotRowsBody()),
      entry([[...uleb(2), I32], [...uleb(1), V128]], sumRowsBody()),
      entry([[...uleb(3), I32], [...uleb(2), V128]], centredDotRowsBody()),
      entry([[...uleb(3), V128]], clipGradientBody()),
      entry([[...uleb(3), I32], [...uleb(11), V128]], outerGridBody()),
    ])),
  ];
  return new Uint8Array(bytes);
}

let compiled: WebAssembly.Module | null | undefined;
// One instance per backend memory: instantiating is cheap but not free, and kernels run per layer.
const instances = new WeakMap<WebAssembly.Memory, SimdLoops>();

/** The loops on `backend`'s heap, or null where this engine has no WebAssembly SIMD (the JS loops run). */
export function simdLoops(backend: BackendWasm): SimdLoops | null {
  const memory = (backend.wasm as unknown as { asm?: { memory?: unknown } }).asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(moduleBytes());
    } catch {
      compiled = null;
    }
  }
  if (compiled === null) return null;
  let loops = instances.get(memory);
  if (!loops) {
    const instance = new WebAssembly.Instance(compiled, { env: { memory } });
    loops = instance.exports as unknown as SimdLoops;
    instances.set(memory, loops);
  }
  return loops;
}

/** Rows a reduction sums in f32 before the block's sums join the f64 totals (blockedSums). */
export const SUM_BLOCK_ROWS = 1024;

/**
 * Sums kept exact enough over long reductions: `rows` are taken `blockRows` at a time; `sumBlock`
 * adds each block's sums into an f32 scratch of `width` floats on the heap (zeroed first; its byte
 * offset is given), and each block's sums then join the f64 totals returned. An f32 sum's error grows
 * with its length; a block bounds it.
 */
export function blockedSums(backend: BackendWasm, rows: number, blockRows: number, width: number, sumBlock: (scratch: number, start: number, count: number) => void): Float64Array {
  const total = new Float64Array(width);
  const scratch = backend.makeOutput([width], 'float32');
  try {
    // The view after the allocation: the heap does not move while the loops run.
    const view = heapView(backend, scratch) as Float32Array;
    for (let start = 0; start < rows; start += blockRows) {
      view.fill(0);
      sumBlock(view.byteOffset, start, Math.min(blockRows, rows - start));
      for (let i = 0; i < width; i++) total[i] += view[i];
    }
  } finally {
    backend.disposeData(scratch.dataId);
  }
  return total;
}
