/**
 * A number in plain decimal notation with the digits that read back as the
 * same number, for LwM2M's text: attribute values and text/plain floats are
 * decimal numbers, and devices do not read JavaScript's exponent form
 * (1e+21, 1e-7); Wakaama refuses it in both.
 */
export function plainDecimal(value: number): string {
  const text = String(value);
  const e = text.indexOf('e');
  if (e < 0) return text;
  const negative = text.startsWith('-');
  const digits = text.slice(negative ? 1 : 0, e).replace('.', '');
  const point = 1 + Number(text.slice(e + 1));
  let plain: string;
  if (point <= 0) plain = `0.${'0'.repeat(-point)}${digits}`;
  else if (point >= digits.length) plain = digits + '0'.repeat(point - digits.length);
  else plain = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return negative ? `-${plain}` : plain;
}
