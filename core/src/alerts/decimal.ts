/**
 * Exact arithmetic on the instrument's decimal text (FORMAT.md §15.2). Values are parsed from their text into
 * rationals of BigInts, never into binary floating point, so that two implementations that follow FORMAT.md get
 * the same digits: sums, means, the reference-O2 factor and every comparison with a limit are exact; a value is
 * rounded only where FORMAT.md says so, half to even (GB/T 8170 "四舍六入五成双").
 *
 * Mean kinetic temperature needs exp and ln: they are computed in fixed point with {@link MKT_SCALE_DIGITS}
 * fractional digits (about 10^-45 absolute error after argument reduction) and the result is rounded half to even.
 */

/** A rational n/d with d > 0 and gcd(|n|, d) = 1. */
export interface Rational {
  readonly n: bigint;
  readonly d: bigint;
}

/** Longest decimal text accepted (sign, digits, point): bounds the work per value. */
export const MAX_DECIMAL_TEXT = 40;
const DECIMAL_TEXT = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

const abs = (x: bigint): bigint => (x < 0n ? -x : x);
function gcd(a: bigint, b: bigint): bigint {
  a = abs(a);
  b = abs(b);
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** n/d reduced; RangeError when d is 0 (misuse: callers check divisors first). */
export function rational(n: bigint, d: bigint = 1n): Rational {
  if (d === 0n) throw new RangeError('division by zero');
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d);
  return g > 1n ? { n: n / g, d: d / g } : { n, d };
}

export const ZERO = rational(0n);
export const ONE = rational(1n);

/**
 * Parses decimal text as instruments print it: optional sign, digits, optional point and fraction (`12.5`, `-0.1`,
 * `.5`, `7.`), at most {@link MAX_DECIMAL_TEXT} characters. No exponent, no spaces, no thousands separators.
 * Returns undefined for anything else (the caller reports the reading as unusable, with its text).
 */
export function parseDecimal(text: string): Rational | undefined {
  if (typeof text !== 'string' || text.length > MAX_DECIMAL_TEXT || !DECIMAL_TEXT.test(text)) return undefined;
  const negative = text.startsWith('-');
  const body = text.replace(/^[+-]/, '');
  const [intPart = '', fracPart = ''] = body.split('.');
  const digits = BigInt(`${intPart}${fracPart}` || '0');
  return rational(negative ? -digits : digits, 10n ** BigInt(fracPart.length));
}

/** Like {@link parseDecimal} but throws RangeError: for rule parameters, checked when the rule set is read. */
export function decimal(text: string): Rational {
  const r = parseDecimal(text);
  if (r === undefined) throw new RangeError(`not a decimal number: ${JSON.stringify(text)}`);
  return r;
}

export const add = (a: Rational, b: Rational): Rational => rational(a.n * b.d + b.n * a.d, a.d * b.d);
export const sub = (a: Rational, b: Rational): Rational => rational(a.n * b.d - b.n * a.d, a.d * b.d);
export const mul = (a: Rational, b: Rational): Rational => rational(a.n * b.n, a.d * b.d);
export const div = (a: Rational, b: Rational): Rational => rational(a.n * b.d, a.d * b.n);
/** -1, 0 or 1 as a <, =, > b. */
export const cmp = (a: Rational, b: Rational): number => {
  const x = a.n * b.d - b.n * a.d;
  return x < 0n ? -1 : x > 0n ? 1 : 0;
};
export const fromInt = (n: number | bigint): Rational => rational(BigInt(n));
export const isZero = (a: Rational): boolean => a.n === 0n;

/** Sum of a list (0 for none). */
export function sum(values: readonly Rational[]): Rational {
  let s = ZERO;
  for (const v of values) s = add(s, v);
  return s;
}

/** Rounds to `places` fractional digits, half to even (GB/T 8170), exactly. */
export function roundHalfEven(a: Rational, places: number): Rational {
  if (!Number.isInteger(places) || places < 0 || places > 30) throw new RangeError('places must be an integer 0..30');
  const scale = 10n ** BigInt(places);
  const scaledN = a.n * scale;
  let q = scaledN / a.d; // truncates toward zero
  const r = abs(scaledN % a.d) * 2n;
  if (r > a.d || (r === a.d && abs(q) % 2n === 1n)) q += scaledN < 0n ? -1n : 1n;
  return rational(q, scale);
}

/**
 * Decimal text of `a` rounded half to even to exactly `places` fractional digits (`41.20`, `-0.5`, `3`); no
 * exponent, no `+`, and never `-0` (a value that rounds to zero is written without sign).
 */
export function formatDecimal(a: Rational, places: number): string {
  const r = roundHalfEven(a, places);
  const scale = 10n ** BigInt(places);
  const scaled = (r.n * scale) / r.d; // exact: r has a denominator dividing scale
  const negative = scaled < 0n;
  const digits = abs(scaled).toString().padStart(places + 1, '0');
  const intPart = digits.slice(0, digits.length - places);
  const frac = digits.slice(digits.length - places);
  return `${negative ? '-' : ''}${intPart}${places > 0 ? `.${frac}` : ''}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Fixed point for exp and ln (mean kinetic temperature only).

/** Fractional decimal digits of the fixed-point exp/ln used for MKT. */
export const MKT_SCALE_DIGITS = 50;
const S = 10n ** BigInt(MKT_SCALE_DIGITS);

/** Fixed point (value × S, truncated toward zero) of a rational. */
const toFixed = (a: Rational): bigint => (a.n * S) / a.d;
const fmul = (a: bigint, b: bigint): bigint => (a * b) / S;
const fdiv = (a: bigint, b: bigint): bigint => (a * S) / b;

/** exp(x) for fixed-point x <= 0: x / 2^16 by Taylor series, then squared 16 times. */
function fexp(x: bigint): bigint {
  if (x > 0n) throw new RangeError('fexp is for x <= 0');
  const halvings = 16;
  const y = x / 2n ** BigInt(halvings);
  let term = S;
  let total = S;
  for (let k = 1n; term !== 0n; k++) {
    term = fmul(term, y) / k;
    total += term;
  }
  for (let i = 0; i < halvings; i++) total = fmul(total, total);
  return total;
}

/** atanh(z) for fixed-point |z| <= 1/3: z + z^3/3 + z^5/5 + … */
function fatanh(z: bigint): bigint {
  const z2 = fmul(z, z);
  let power = z;
  let total = z;
  for (let k = 3n; power !== 0n; k += 2n) {
    power = fmul(power, z2);
    total += power / k;
  }
  return total;
}

const LN2 = 2n * fatanh(fdiv(S, 3n * S)); // ln 2 = 2 atanh(1/3)

/** ln(y) for fixed-point y > 0: y = 2^e · f with f in [1/2, 1), ln f = 2 atanh((f - 1)/(f + 1)). */
function fln(y: bigint): bigint {
  if (y <= 0n) throw new RangeError('fln is for y > 0');
  let e = 0n;
  let f = y;
  while (f >= S) {
    f /= 2n;
    e += 1n;
  }
  while (f < S / 2n) {
    f *= 2n;
    e -= 1n;
  }
  return e * LN2 + 2n * fatanh(fdiv(f - S, f + S));
}

/** ΔH/R of USP <1079> / PROTOCOLS.md §4.3: 83.144 kJ/mol / 8.3144 J/(mol·K) = 10 000 K. */
export const MKT_DELTA_H_OVER_R = fromInt(10_000);
/** 0 °C in kelvin. */
export const KELVIN_OFFSET = decimal('273.15');

/**
 * Mean kinetic temperature in °C of equally spaced temperatures in °C (Haynes; USP <1079>):
 * `MKT = (ΔH/R) / (−ln(Σ exp(−(ΔH/R)/Tᵢ) / n)) − 273.15`, Tᵢ = tᵢ + 273.15 K, returned as a rational of the
 * fixed-point result (about 45 correct decimals); round it with {@link formatDecimal}. RangeError for an empty
 * list or a temperature at or below absolute zero.
 */
export function meanKineticTemperature(celsius: readonly Rational[], deltaHOverR: Rational = MKT_DELTA_H_OVER_R): Rational {
  if (celsius.length === 0) throw new RangeError('MKT of no temperatures');
  const xs = celsius.map((t) => {
    const kelvin = add(t, KELVIN_OFFSET);
    if (cmp(kelvin, ZERO) <= 0) throw new RangeError('temperature at or below absolute zero');
    return toFixed(div(deltaHOverR, kelvin)); // ΔH/(R·T) > 0
  });
  // Σ exp(−xᵢ) = exp(−m) Σ exp(m − xᵢ) with m = min xᵢ, so every exp argument is <= 0 and the terms stay >= exp(−Δ).
  const m = xs.reduce((a, b) => (b < a ? b : a));
  let total = 0n;
  for (const x of xs) total += fexp(m - x);
  const meanScaled = total / BigInt(xs.length);
  const lnMean = -m + fln(meanScaled); // ln(mean exp(−xᵢ))
  const kelvin = fdiv(toFixed(deltaHOverR), -lnMean);
  return sub(rational(kelvin, S), KELVIN_OFFSET);
}
