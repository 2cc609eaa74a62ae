// Log-gamma and the binomial log-likelihood against values computed independently: exact BigInt
// rational arithmetic, closed forms, and arbitrary-precision (mpmath, 40 digits) reference values.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { binomialDeviance, binomialLogLikelihood, logFactorial, logGamma, stirlingCorrection } from '../../src/lib/metrics/special.js';

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** a / b as the nearest double (within an ulp), for any size of a and b > 0. */
function ratioToNumber(a: bigint, b: bigint): number {
  if (a === 0n) return 0;
  const negative = a < 0n;
  const magnitude = negative ? -a : a;
  const shift = bitLength(magnitude) - bitLength(b) - 64;
  const quotient = shift >= 0 ? magnitude / (b << BigInt(shift)) : (magnitude << BigInt(-shift)) / b;
  const value = Number(quotient) * 2 ** shift;
  return negative ? -value : value;
}

// ln 2 split so that j·LN2_HIGH is exact for |j| < 2^20 (the fdlibm constants).
const LN2_HIGH = 6.93147180369123816490e-1;
const LN2_LOW = 1.90821492927058770002e-10;

/** ln(a / b) for BigInts a, b > 0, to about an ulp of the result, near 1 included. */
function logOfRatio(a: bigint, b: bigint): number {
  const diff = a - b;
  if ((diff < 0n ? -diff : diff) * 4n < b) return Math.log1p(ratioToNumber(diff, b));
  // a/b = m·2^j with m in [1, 2): ln m is accurate in absolute terms and j·ln 2 is nearly exact.
  const shift = bitLength(a) - bitLength(b) - 64;
  const quotient = shift >= 0 ? a / (b << BigInt(shift)) : (a << BigInt(-shift)) / b;
  const top = bitLength(quotient) - 1;
  const mantissa = Number(quotient) / 2 ** top;
  const j = shift + top;
  return Math.log(mantissa) + j * LN2_HIGH + j * LN2_LOW;
}

/** The exact value of a double as numerator / denominator. */
function exactFraction(x: number): [bigint, bigint] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exponent = -1074;
  if (biased !== 0) {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  return exponent >= 0 ? [mantissa << BigInt(exponent), 1n] : [mantissa, 1n << BigInt(-exponent)];
}

function bigFactorial(n: number): bigint {
  let product = 1n;
  for (let i = 2n; i <= BigInt(n); i++) product *= i;
  return product;
}

function bigBinomial(n: number, k: number): bigint {
  let c = 1n;
  for (let i = 0; i < k; i++) c = (c * BigInt(n - i)) / BigInt(i + 1);
  return c;
}

/** ln[C(n,k) p^k (1−p)^(n−k)] exactly for the double p, rounded once at the end. */
function exactBinomialLogPmf(n: number, k: number, p: number): number {
  const [a, b] = exactFraction(p);
  const numerator = bigBinomial(n, k) * a ** BigInt(k) * (b - a) ** BigInt(n - k);
  return logOfRatio(numerator, b ** BigInt(n));
}

function assertClose(actual: number, expected: number, relative: number, what: string): void {
  const error = Math.abs(actual - expected);
  const scale = Math.max(Math.abs(expected), Number.MIN_VALUE);
  assert.ok(error <= relative * scale, `${what}: got ${actual}, expected ${expected} (relative error ${(error / scale).toExponential(2)} > ${relative})`);
}

test('the test oracle itself: exact fractions and ratio logarithms', () => {
  assert.deepEqual(exactFraction(0.5), [1n << 52n, 1n << 53n]);
  assert.equal(ratioToNumber(...exactFraction(0.1)), 0.1);
  assertClose(logOfRatio(10n ** 30n, 1n), 69.07755278982137052, 2e-16, 'ln 1e30');
  assert.equal(logOfRatio(2n, 1n), Math.LN2);
  assertClose(logOfRatio(3n, 4n), Math.log(0.75), 2e-16, 'ln 3/4');
  assertClose(logOfRatio(1000001n, 1000000n), Math.log1p(1e-6), 1e-15, 'near 1');
});

test('logGamma of integers is ln((n-1)!) from exact BigInt factorials', () => {
  for (const n of [1, 2, 3, 5, 10, 17, 22, 23, 24, 25, 30, 50, 99, 100, 170, 171, 500, 1000, 5000]) {
    const expected = n <= 2 ? 0 : logOfRatio(bigFactorial(n - 1), 1n);
    if (n <= 2) assert.equal(logGamma(n), 0);
    else assertClose(logGamma(n), expected, 2e-15, `logGamma(${n})`);
    assert.equal(logFactorial(n - 1), logGamma(n));
  }
});

test('logGamma of half-integers matches Γ(m+½) = (2m)!·√π / (4^m·m!)', () => {
  for (const m of [0, 1, 2, 3, 7, 14, 15, 40, 200, 1000]) {
    const expected = logOfRatio(bigFactorial(2 * m), 4n ** BigInt(m) * bigFactorial(m)) + 0.5 * Math.log(Math.PI);
    assertClose(logGamma(m + 0.5), expected, 2e-15, `logGamma(${m}.5)`);
  }
});

// ln Γ(x) from mpmath at 40 digits, for the exact double x (so near the zeros at 1 and 2 too).
const LOG_GAMMA_REFERENCE: Array<[number, string]> = [
  [1e-300, '690.7755278982137051803'],
  [1e-8, '18.42068073818020888445'],
  [0.1, '2.252712651734205902006'],
  [0.5, '0.5723649429247000870717'],
  [0.9999, '0.0000577297915611938628083'],
  [1.0001, '-0.00005771334222047126800518'],
  [1.4616321449683622, '-0.1214862905358496080955'],
  [1.999999, '-4.227840125965853701903e-7'],
  [2.000001, '4.227846576245292362043e-7'],
  [3.7, '1.4280723266653881292'],
  [7.25, '7.052185450738539444926'],
  [14.999, '25.18854687054692790677'],
  [15.5, '26.53691449111561362395'],
  [100.25, '360.2845596377642349684'],
  [1000000.5, '12815511.47690276564211'],
  [1e15, '33538776394910668.90982'],
  [1e300, '6.897755278982137414744e+302'],
];

test('logGamma matches 40-digit reference values to 1e-14 relative, near its zeros too', () => {
  for (const [x, reference] of LOG_GAMMA_REFERENCE) assertClose(logGamma(x), Number(reference), 1e-14, `logGamma(${x})`);
});

test('logGamma satisfies ln Γ(x+1) = ln Γ(x) + ln x across its ranges', () => {
  for (let x = 0.003; x < 40; x = x * 1.37 + 0.011) {
    // The check itself subtracts: its own rounding is a few ulps of the larger term.
    const scale = Math.abs(logGamma(x)) + Math.abs(Math.log(x));
    assert.ok(Math.abs(logGamma(x + 1) - logGamma(x) - Math.log(x)) <= 4e-16 * scale + 1e-300, `recurrence at ${x}`);
  }
});

test('logGamma outside its domain', () => {
  assert.ok(Number.isNaN(logGamma(0)));
  assert.ok(Number.isNaN(logGamma(-1.5)));
  assert.ok(Number.isNaN(logGamma(Number.NaN)));
  assert.equal(logGamma(Infinity), Infinity);
  assert.equal(logGamma(1e306), Infinity);
  assert.ok(Number.isNaN(logFactorial(2.5)));
});

test('stirlingCorrection and binomialDeviance agree with their definitions where no cancellation bites', () => {
  for (const x of [1, 2, 5, 14, 15, 16, 40]) {
    const direct = logGamma(x + 1) - ((x + 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI));
    assert.ok(Math.abs(stirlingCorrection(x) - direct) < 1e-14, `δ(${x})`);
    assert.ok(Math.abs(stirlingCorrection(x) - 1 / (12 * x)) < 1 / (300 * x ** 3), `δ(${x}) ≈ 1/(12x)`);
  }
  for (const [x, m] of [[3, 10], [10, 3], [100, 95], [100, 100.5], [1e6, 1e6 + 1]]) {
    const direct = x * Math.log(x / m) + m - x;
    assert.ok(Math.abs(binomialDeviance(x, m) - direct) <= 1e-9 * Math.max(1, direct), `D(${x}, ${m})`);
  }
  assert.equal(binomialDeviance(7, 7), 0);
  // D(x, x+ε) ≈ ε²/(2x): the series keeps it where the direct form returns rounding noise.
  const m = 1e6 + 1e-3;
  const d = m - 1e6;
  assertClose(binomialDeviance(1e6, m), (d * d) / 2e6 - (d * d * d) / 3e12, 1e-12, 'D near x = m');
});

test('binomialLogLikelihood equals exact BigInt rational arithmetic for every k at small n', () => {
  const probabilities = [1e-9, 0.001, 0.1, 0.3, 0.5, 0.7234, 0.999, 1 - 1e-9];
  let checked = 0;
  for (const n of [1, 2, 3, 5, 8, 13, 21, 30]) {
    for (const p of probabilities) {
      for (let k = 0; k <= n; k++) {
        assertClose(binomialLogLikelihood(n, k, p), exactBinomialLogPmf(n, k, p), 1e-13, `ln L(n=${n}, k=${k}, p=${p})`);
        checked += 1;
      }
    }
  }
  assert.ok(checked > 600);
});

test('binomialLogLikelihood at k = 0 and k = n is the closed form n ln(1−p), n ln p', () => {
  for (const n of [1, 10, 1e6, 3e9]) {
    for (const p of [1e-15, 1e-6, 0.2, 0.5, 0.9, 1 - 1e-12]) {
      assertClose(binomialLogLikelihood(n, 0, p), n * Math.log1p(-p), 1e-15, `k=0 n=${n} p=${p}`);
      assertClose(binomialLogLikelihood(n, n, p), n * Math.log(p), 1e-15, `k=n n=${n} p=${p}`);
    }
  }
  assert.equal(binomialLogLikelihood(0, 0, 0.3), 0);
  assert.equal(binomialLogLikelihood(4, 0, 0), 0);
  assert.equal(binomialLogLikelihood(4, 4, 1), 0);
  assert.equal(binomialLogLikelihood(4, 1, 0), -Infinity);
  assert.equal(binomialLogLikelihood(4, 3, 1), -Infinity);
});

test('binomialLogLikelihood steps from k to k+1 by ln[(n−k)/(k+1)] + ln[p/(1−p)], at large n and extreme p', () => {
  const cases: Array<[number, number, number]> = [
    [1e6, 0, 1e-9],
    [1e6, 1, 1e-9],
    [3e6, 0, 0.3],
    [2e7, 2e7 - 1, 1 - 1e-7],
    [1e6, 999_998, 1 - 1e-9],
    [5e6, 1_500_000, 0.3],
  ];
  for (const [n, k, p] of cases) {
    const step = binomialLogLikelihood(n, k + 1, p) - binomialLogLikelihood(n, k, p);
    const expected = Math.log((n - k) / (k + 1)) + Math.log(p) - Math.log1p(-p);
    assert.ok(Math.abs(step - expected) < 1e-9 * Math.max(1, Math.abs(expected)), `step at n=${n} k=${k} p=${p}: ${step} vs ${expected}`);
  }
});

test('binomialLogLikelihood is a distribution: Σ_k exp(ln L) = 1 to 1e-12 at n = 1e6', () => {
  for (const p of [0.3, 1e-4, 1 - 1e-4]) {
    const n = 1_000_000;
    let sum = 0;
    let compensation = 0;
    for (let k = 0; k <= n; k++) {
      const term = Math.exp(binomialLogLikelihood(n, k, p)) - compensation;
      const next = sum + term;
      compensation = next - sum - term;
      sum = next;
    }
    assert.ok(Math.abs(sum - 1) < 1e-12, `p=${p}: Σ pmf = ${sum}`);
  }
});

// ln L from mpmath at 40 digits via log-gamma, for the exact double p.
const BINOMIAL_REFERENCE: Array<[number, number, number, string]> = [
  [1000000, 100000, 0.1, '-6.622721850453466391025'],
  [1000000, 100300, 0.1, '-7.123609138300171867867'],
  [10000000, 3, 1e-6, '-4.884006490247775966831'],
  [2000000, 1999990, 0.99999, '-5.147112337692388061265'],
  [1000000000, 500012345, 0.5, '-10.89222232109410224432'],
  [1000, 999, 0.001, '-6893.940768924506340688'],
  [123456789, 1234, 1e-5, '-4.478139802229960710859'],
  [5000000, 4999999, 0.999999999, '-5.303317393691058911137'],
  [3000000, 1, 1e-12, '-12.71690126929516443433'],
];

test('binomialLogLikelihood keeps 1e-13 relative accuracy for n up to 1e9 and p near 0 or 1', () => {
  for (const [n, k, p, reference] of BINOMIAL_REFERENCE) {
    assertClose(binomialLogLikelihood(n, k, p), Number(reference), 1e-13, `ln L(n=${n}, k=${k}, p=${p})`);
  }
});

test('binomialLogLikelihood rejects what is not a binomial', () => {
  assert.throws(() => binomialLogLikelihood(5, 6, 0.5), RangeError);
  assert.throws(() => binomialLogLikelihood(5, -1, 0.5), RangeError);
  assert.throws(() => binomialLogLikelihood(-5, 0, 0.5), RangeError);
  assert.throws(() => binomialLogLikelihood(5.5, 1, 0.5), RangeError);
  assert.throws(() => binomialLogLikelihood(5, 1, 1.5), RangeError);
  assert.throws(() => binomialLogLikelihood(5, 1, Number.NaN), RangeError);
});
