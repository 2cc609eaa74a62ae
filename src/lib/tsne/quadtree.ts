// A point-region quadtree over 2-D points with each cell's point count and centre of mass, for the
// Barnes-Hut approximation of t-SNE's repulsive forces (van der Maaten 2014, §4.2): a cell far enough
// away (its width over its distance below theta) acts as one point of its total mass.
// Cells live in flat typed arrays, rebuilt every iteration without allocation once grown.

const NO_CHILD = -1;
/** Cells smaller than this are not split further: coincident points share one leaf. */
const MIN_HALF_WIDTH = 1e-12;

export class QuadTree {
  private capacity = 0;
  private size = 0;
  private centerX = new Float64Array(0);
  private centerY = new Float64Array(0);
  private halfWidth = new Float64Array(0);
  private sumX = new Float64Array(0);
  private sumY = new Float64Array(0);
  private count = new Int32Array(0);
  /** Index of the first of four consecutive children, or NO_CHILD for a leaf. */
  private firstChild = new Int32Array(0);
  /** The point a leaf holds (all its count are copies of it), or -1 when empty. */
  private leafPoint = new Int32Array(0);
  private stack = new Int32Array(0);
  private positions: Float64Array = new Float64Array(0);

  /** Rebuilds the tree over points (x0, y0, x1, y1, ...). */
  build(positions: Float64Array, n: number): void {
    this.positions = positions;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = positions[2 * i], y = positions[2 * i + 1];
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
    }
    this.size = 0;
    this.ensureCapacity(Math.max(16, 4 * n));
    const half = Math.max(maxX - minX, maxY - minY) / 2 + 1e-5;
    this.newCell((minX + maxX) / 2, (minY + maxY) / 2, half);
    for (let i = 0; i < n; i++) this.insert(i);
    if (this.stack.length < this.capacity) this.stack = new Int32Array(this.capacity);
  }

  private ensureCapacity(needed: number): void {
    if (needed <= this.capacity) return;
    const capacity = Math.max(needed, Math.ceil(this.capacity * 1.5));
    const grow64 = (a: Float64Array) => { const b = new Float64Array(capacity); b.set(a.subarray(0, this.size)); return b; };
    const grow32 = (a: Int32Array) => { const b = new Int32Array(capacity); b.set(a.subarray(0, this.size)); return b; };
    this.centerX = grow64(this.centerX);
    this.centerY = grow64(this.centerY);
    this.halfWidth = grow64(this.halfWidth);
    this.sumX = grow64(this.sumX);
    this.sumY = grow64(this.sumY);
    this.count = grow32(this.count);
    this.firstChild = grow32(this.firstChild);
    this.leafPoint = grow32(this.leafPoint);
    this.capacity = capacity;
  }

  private newCell(cx: number, cy: number, hw: number): number {
    const c = this.size++;
    this.centerX[c] = cx;
    this.centerY[c] = cy;
    this.halfWidth[c] = hw;
    this.sumX[c] = 0;
    this.sumY[c] = 0;
    this.count[c] = 0;
    this.firstChild[c] = NO_CHILD;
    this.leafPoint[c] = -1;
    return c;
  }

  /** The child quadrant of cell c that contains (x, y): bit 0 east, bit 1 north. */
  private childFor(c: number, x: number, y: number): number {
    return this.firstChild[c] + (x >= this.centerX[c] ? 1 : 0) + (y >= this.centerY[c] ? 2 : 0);
  }

  private split(c: number): void {
    this.ensureCapacity(this.size + 4);
    const hw = this.halfWidth[c] / 2;
    const cx = this.centerX[c], cy = this.centerY[c];
    const first = this.newCell(cx - hw, cy - hw, hw);
    this.newCell(cx + hw, cy - hw, hw);
    this.newCell(cx - hw, cy + hw, hw);
    this.newCell(cx + hw, cy + hw, hw);
    this.firstChild[c] = first;
    // The copies of the point the leaf held move down into one child.
    const p = this.leafPoint[c];
    const x = this.positions[2 * p], y = this.positions[2 * p + 1];
    const child = this.childFor(c, x, y);
    const copies = this.count[c];
    this.count[child] = copies;
    this.sumX[child] = copies * x;
    this.sumY[child] = copies * y;
    this.leafPoint[child] = p;
    this.leafPoint[c] = -1;
  }

  private insert(i: number): void {
    const x = this.positions[2 * i], y = this.positions[2 * i + 1];
    let c = 0;
    for (;;) {
      if (this.firstChild[c] === NO_CHILD) {
        if (this.count[c] === 0) {
          this.leafPoint[c] = i;
          this.count[c] = 1;
          this.sumX[c] = x;
          this.sumY[c] = y;
          return;
        }
        const p = this.leafPoint[c];
        if ((this.positions[2 * p] === x && this.positions[2 * p + 1] === y) || this.halfWidth[c] < MIN_HALF_WIDTH) {
          this.count[c]++;
          this.sumX[c] += x;
          this.sumY[c] += y;
          return;
        }
        this.split(c);
      }
      this.count[c]++;
      this.sumX[c] += x;
      this.sumY[c] += y;
      c = this.childFor(c, x, y);
    }
  }

  /**
   * Adds to `force` (at 2i) the unnormalised repulsion sum_j q_ij^2 Z^2 (y_i - y_j) on point i, with
   * q_ij Z = 1 / (1 + |y_i - y_j|^2), and returns sum_j q_ij Z (its share of the normaliser Z).
   */
  repulsion(i: number, theta: number, force: Float64Array): number {
    const x = this.positions[2 * i], y = this.positions[2 * i + 1];
    const theta2 = theta * theta;
    const stack = this.stack;
    let top = 0;
    stack[top++] = 0;
    let sumQ = 0;
    let fx = 0;
    let fy = 0;
    while (top > 0) {
      const c = stack[--top];
      const cnt = this.count[c];
      if (cnt === 0) continue;
      const isLeaf = this.firstChild[c] === NO_CHILD;
      const mass = isLeaf && this.leafPoint[c] === i ? cnt - 1 : cnt;
      if (mass === 0) continue;
      const dx = x - this.sumX[c] / cnt;
      const dy = y - this.sumY[c] / cnt;
      const d2 = dx * dx + dy * dy;
      const width = 2 * this.halfWidth[c];
      if (isLeaf || width * width < theta2 * d2) {
        const q = 1 / (1 + d2);
        const mq = mass * q;
        sumQ += mq;
        fx += mq * q * dx;
        fy += mq * q * dy;
      } else {
        const first = this.firstChild[c];
        stack[top++] = first;
        stack[top++] = first + 1;
        stack[top++] = first + 2;
        stack[top++] = first + 3;
      }
    }
    force[2 * i] += fx;
    force[2 * i + 1] += fy;
    return sumQ;
  }
}
