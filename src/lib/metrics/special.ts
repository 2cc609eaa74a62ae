// Special functions computed in double precision without any library: log-gamma and the binomial
// log-likelihood, accurate to a few ulps for arguments from 1e-300 to 1e300 (tests pin them against
// exact BigInt arithmetic and arbitrary-precision reference values).

const HALF_LOG_TWO_PI = 0.91893853320467274178;
const TWO_PI = 2 * Math.PI;
/** From here up, log-gamma is the Stirling series. */
const STIRLING_FROM = 15;
/** n! is exact in a double up to 22! (its odd part still fits in 53 bits). */
const LARGEST_EXACT_FACTORIAL = 22;
const EULER_GAMMA = 0.57721566490153286061;
/** ζ(k) − 1 for k = 2..30, to 20 digits (from mpmath). */
const ZETA_MINUS_ONE = [
  0.64493406684822643647, 0.2020569031595942854, 0.082323233711138191516, 0.036927755143369926331, 0.017343061984449139715,
  0.0083492773819228268398, 0.0040773561979443393787, 0.0020083928260822144179, 0.00099457512781808533715,
  0.0004941886041194645587, 0.00024608655330804829864, 0.00012271334757848914675, 0.000061248135058704829259,
  0.000030588236307020493552, 0.000015282259408651871733, 7.6371976378997622736e-6, 3.8172932649998398565e-6,
  1.9082127165539389257e-6, 9.5396203387279611315e-7, 4.7693298678780646312e-7, 2.3845050272773299e-7,
  1.1921992596531107307e-7, 5.9608189051259479612e-8, 2.9803503514652280186e-8, 1.4901554828365041235e-8,
  7.450711789835429492e-9, 3.7253340247884570548e-9, 1.8626597235130490064e-9, 9.3132743241966818287e-10,
];

/** Σ_{k≥2} (−1)^k (ζ(k)−1) e^k / k for |e| ≤ ½, the part of ln Γ(1+e)'s Taylor series beyond its closed-form terms. */
function zetaTail(e: number): number {
  let sum = 0;
  let power = -e;
  for (let i = 0; i < ZETA_MINUS_ONE.length; i++) {
    power *= -e;
    sum += (ZETA_MINUS_ONE[i]! * power) / (i + 2);
  }
  return sum;
}

/**
 * δ(x) = ln Γ(x+1) − [(x+½)ln x − x + ½ln 2π] for x ≥ 15: the Stirling series with Bernoulli numbers up to
 * B14; the first omitted term is below 1e-19 there.
 */
function stirlingSeries(x: number): number {
  const xx = x * x;
  return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - (1 / 1188 - (691 / 360360 - 1 / (156 * xx)) / xx) / xx) / xx) / xx) / xx) / x;
}

/** x! for integer 0 ≤ x ≤ 22, exact. */
function exactFactorial(x: number): number {
  let product = 1;
  for (let i = 2; i <= x; i++) product *= i;
  return product;
}

/**
 * ln Γ(x) for x > 0 (NaN for x ≤ 0 or NaN, +Infinity past the overflow near 2.5e305). Integers up to 23
 * are the logarithm of an exact factorial; 0.5 ≤ x < 2.5 is the Taylor series about 1 or 2 (so the
 * zeros at 1 and 2 keep full relative accuracy); x ≥ 15 is the Stirling series; the rest is moved into
 * one of those ranges with Γ(x+1) = xΓ(x). Relative error of a few ulps everywhere.
 */
export function logGamma(x: number): number {
  if (!(x > 0)) return Number.NaN;
  if (x === Infinity) return Infinity;
  if (Number.isInteger(x) && x <= LARGEST_EXACT_FACTORIAL + 1) return Math.log(exactFactorial(x - 1));
  if (x >= STIRLING_FROM) return (x - 0.5) * Math.log(x) - x + HALF_LOG_TWO_PI + stirlingSeries(x);
  if (x < 0.5) return logGamma(x + 1) - Math.log(x);
  // ln Γ(1+e) = −γe + (e − ln(1+e)) + tail, and ln Γ(2+e) = ln Γ(1+e) + ln(1+e) = (1−γ)e + tail.
  if (x < 1.5) return -EULER_GAMMA * (x - 1) + (x - 1 - Math.log1p(x - 1)) + zetaTail(x - 1);
  if (x < 2.5) return (1 - EULER_GAMMA) * (x - 2) + zetaTail(x - 2);
  let reduced = x;
  let product = 1;
  while (reduced >= 2.5) {
    reduced -= 1;
    product *= reduced;
  }
  return logGamma(reduced) + Math.log(product);
}

/** ln n! = ln Γ(n+1) for a non-negative integer n. */
export function logFactorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) return Number.NaN;
  return logGamma(n + 1);
}

/** δ(x) = ln x! − [(x+½)ln x − x + ½ln 2π], the error of Stirling's formula, for x > 0. */
export function stirlingCorrection(x: number): number {
  if (x >= STIRLING_FROM) return stirlingSeries(x);
  return logGamma(x + 1) - ((x + 0.5) * Math.log(x) - x + HALF_LOG_TWO_PI);
}

/**
 * D(x, m) = x ln(x/m) + m − x ≥ 0, the binomial deviance term. Near x = m its terms cancel, so there it
 * is summed as (x−m)v + 2x·Σ_{j≥1} v^(2j+1)/(2j+1) with v = (x−m)/(x+m) (Loader 2000, "bd0").
 */
export function binomialDeviance(x: number, m: number): number {
  const diff = x - m;
  if (Math.abs(diff) < 0.1 * (x + m)) {
    const v = diff / (x + m);
    const vv = v * v;
    let sum = diff * v;
    let power = 2 * x * v;
    for (let j = 1; j < 200; j++) {
      power *= vv;
      const next = sum + power / (2 * j + 1);
      if (next === sum) return next;
      sum = next;
    }
    return sum;
  }
  return x * Math.log(x / m) + m - x;
}

/**
 * ln L = ln[C(n,k) p^k (1−p)^(n−k)] for integers 0 ≤ k ≤ n and 0 ≤ p ≤ 1, never forming C(n,k) or p^k.
 * Writing each ln x! as Stirling's formula plus its correction δ, the large terms of ln C(n,k),
 * k ln p and (n−k) ln(1−p) cancel exactly into two deviance terms, so the result keeps its relative
 * accuracy for n in the billions (the direct ln Γ sum loses about log10(n) digits):
 *   ln L = δ(n) − δ(k) − δ(n−k) − D(k, np) − D(n−k, n(1−p)) + ½ ln[n / (2π k (n−k))]   (0 < k < n)
 *   ln L = n ln(1−p)  (k = 0),   ln L = n ln p  (k = n).
 */
export function binomialLogLikelihood(n: number, k: number, p: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`binomial n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`binomial k must be an integer in [0, n=${n}], got ${k}`);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`binomial p must be in [0, 1], got ${p}`);
  if (n === 0) return 0;
  if (p === 0) return k === 0 ? 0 : -Infinity;
  if (p === 1) return k === n ? 0 : -Infinity;
  if (k === 0) return n * Math.log1p(-p);
  if (k === n) return n * Math.log(p);
  const q = 1 - p;
  return (
    stirlingCorrection(n) -
    stirlingCorrection(k) -
    stirlingCorrection(n - k) -
    binomialDeviance(k, n * p) -
    binomialDeviance(n - k, n * q) +
    0.5 * Math.log(n / (TWO_PI * k * (n - k)))
  );
}
