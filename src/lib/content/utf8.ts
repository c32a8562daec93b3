const strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Bytes from a device as text; throws TypeError for anything that is not
 * UTF-8. Plain ASCII, most of what devices send, skips the decoder.
 */
export function decodeUtf8(bytes: Buffer): string {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] > 0x7f) return strict.decode(bytes);
  return bytes.toString('latin1');
}
