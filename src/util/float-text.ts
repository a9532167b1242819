/**
 * Floating-point text as PostgreSQL prints it (float8out, float4out: shortest digits that round-trip, exponent
 * form outside 1e-4 <= |v| < 1e15, or 1e6 for float4). Shared by the SQL types and the vector codec, whose
 * elements pgvector prints with float4out.
 */

/** PostgreSQL's float8out: shortest round-trip digits, exponent form outside 1e-4 <= |v| < 1e15. */
export function formatFloat(v: number, float4 = false): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "Infinity";
  if (v === Number.NEGATIVE_INFINITY) return "-Infinity";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  let mantissa: string;
  let exp: number;
  if (float4) {
    let p = 1;
    let s = v.toExponential(0);
    while (p < 9 && Math.fround(Number(s)) !== v) s = v.toExponential(p++);
    [mantissa, exp] = splitExp(s);
  } else {
    [mantissa, exp] = splitExp(v.toExponential());
  }
  const neg = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  const limit = float4 ? 6 : 15;
  let out: string;
  if (exp < -4 || exp >= limit) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    out = `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  } else if (exp < 0) {
    out = `0.${"0".repeat(-exp - 1)}${digits}`;
  } else if (digits.length <= exp + 1) {
    out = digits + "0".repeat(exp + 1 - digits.length);
  } else {
    out = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return neg ? `-${out}` : out;
}

function splitExp(s: string): [string, number] {
  const i = s.indexOf("e");
  return [s.slice(0, i), Number(s.slice(i + 1))];
}
