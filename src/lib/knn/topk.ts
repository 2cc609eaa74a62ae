// The k best candidates of many queries at once: one bounded max-heap per query whose root is the
// worst kept candidate, ordered by (distance, gallery index) so ties go to the earlier gallery row.

/** Per-query top-k by smallest distance, stored flat in typed arrays (no per-candidate objects). */
export class TopKHeaps {
  readonly queries: number;
  readonly k: number;
  /** Heap storage: query q owns slots [q*k, q*k + sizes[q]). */
  private readonly distances: Float64Array;
  private readonly indices: Float64Array;
  readonly sizes: Int32Array;

  constructor(queries: number, k: number) {
    if (!Number.isInteger(k) || k <= 0) throw new RangeError(`k must be a positive integer, got ${k}`);
    this.queries = queries;
    this.k = k;
    this.distances = new Float64Array(queries * k);
    this.indices = new Float64Array(queries * k);
    this.sizes = new Int32Array(queries);
  }

  /** Bytes held for `queries` heaps of `k`. */
  static bytesFor(queries: number, k: number): number {
    return queries * (k * 16 + 4);
  }

  /** The distance a candidate must beat (or tie with a lower index) to enter query q's heap; Infinity while not full. */
  worstDistance(q: number): number {
    return this.sizes[q] < this.k ? Infinity : this.distances[q * this.k];
  }

  /** Offers gallery row `index` at `distance` to query q. */
  push(q: number, distance: number, index: number): void {
    const k = this.k;
    const base = q * k;
    const d = this.distances;
    const ix = this.indices;
    let size = this.sizes[q];
    if (size < k) {
      // Sift up from the new leaf.
      let pos = size;
      while (pos > 0) {
        const parent = (pos - 1) >> 1;
        const pd = d[base + parent];
        if (pd > distance || (pd === distance && ix[base + parent] > index)) break;
        d[base + pos] = pd;
        ix[base + pos] = ix[base + parent];
        pos = parent;
      }
      d[base + pos] = distance;
      ix[base + pos] = index;
      this.sizes[q] = size + 1;
      return;
    }
    const rootDistance = d[base];
    if (distance > rootDistance || (distance === rootDistance && index > ix[base])) return;
    // Replace the root and sift down.
    let pos = 0;
    size = k;
    for (;;) {
      const left = 2 * pos + 1;
      if (left >= size) break;
      let child = left;
      const right = left + 1;
      if (right < size) {
        const ld = d[base + left];
        const rd = d[base + right];
        if (rd > ld || (rd === ld && ix[base + right] > ix[base + left])) child = right;
      }
      const cd = d[base + child];
      if (cd < distance || (cd === distance && ix[base + child] < index)) break;
      d[base + pos] = cd;
      ix[base + pos] = ix[base + child];
      pos = child;
    }
    d[base + pos] = distance;
    ix[base + pos] = index;
  }

  /** Query q's candidates best first: writes into `indices`/`distances` from offset and returns how many. */
  sortedInto(q: number, indices: Float64Array, distances: Float64Array, offset: number): number {
    const size = this.sizes[q];
    const base = q * this.k;
    const order = Array.from({ length: size }, (_, i) => base + i);
    order.sort((a, b) => this.distances[a] - this.distances[b] || this.indices[a] - this.indices[b]);
    for (let i = 0; i < size; i++) {
      indices[offset + i] = this.indices[order[i]];
      distances[offset + i] = this.distances[order[i]];
    }
    return size;
  }

  /** Empties every heap so the storage can serve the next block of queries. */
  clear(): void {
    this.sizes.fill(0);
  }
}
