import { createHmac } from 'node:crypto';

/** The TLS 1.2 PRF with SHA-256 (RFC 5246 section 5), the only one our cipher suites use. */
export function prf(secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelAndSeed = Buffer.concat([Buffer.from(label, 'ascii'), seed]);
  const output: Buffer[] = [];
  let produced = 0;
  let a = labelAndSeed;
  while (produced < length) {
    a = createHmac('sha256', secret).update(a).digest();
    const block = createHmac('sha256', secret).update(a).update(labelAndSeed).digest();
    output.push(block);
    produced += block.length;
  }
  return Buffer.concat(output).subarray(0, length);
}

/** Master secret; with extended_master_secret (RFC 7627) bound to the hash of the whole handshake so far. */
export function masterSecret(preMaster: Buffer, clientRandom: Buffer, serverRandom: Buffer, sessionHash?: Buffer): Buffer {
  if (sessionHash) return prf(preMaster, 'extended master secret', sessionHash, 48);
  return prf(preMaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), 48);
}

export function keyBlock(master: Buffer, clientRandom: Buffer, serverRandom: Buffer, length: number): Buffer {
  return prf(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), length);
}

export function verifyData(master: Buffer, sender: 'client' | 'server', handshakeHash: Buffer): Buffer {
  return prf(master, `${sender} finished`, handshakeHash, 12);
}

/** RFC 4279 section 2: the PSK premaster secret is N zero bytes and the N-byte key, each with its length. */
export function pskPreMaster(psk: Buffer): Buffer {
  const out = Buffer.alloc(4 + psk.length * 2);
  out.writeUInt16BE(psk.length, 0);
  out.writeUInt16BE(psk.length, 2 + psk.length);
  psk.copy(out, 4 + psk.length);
  return out;
}
