/**
 * How endpoint client names become oneM2M resource names and AE-IDs, and
 * back: one mapping used for every resource of a device.
 *
 * TS-0014 6.2.2.1 names the AE after the endpoint's URN without "urn:", but a
 * resourceName may only hold the unreserved characters of TS-0004 (letters,
 * digits, "-", ".", "_", "~"). So:
 * - a URN ("urn:<NID>:<NSS>") loses its "urn:";
 * - every byte other than A-Z, a-z, 0-9, "-" and "." (UTF-8) is written "_" and
 *   two hex digits: upper case in URNs, lower case in other names, which keeps
 *   the two apart ("urn:dev:1" is "dev_3A1", "dev:1" is "dev_3a1");
 * - the AE-ID is "C" and the resource name (TS-0001: C for CSE-relative);
 * - the <node> is the resource name and "_n", which no endpoint name maps to.
 */

const UNRESERVED = /^[A-Za-z0-9.-]$/;
const URN = /^urn:[^:]+:./;
/** The escape of ":" in URNs: a name holding it is a URN. */
const URN_COLON = '_3A';

export function resourceNameOf(endpoint: string): string {
  const urn = URN.test(endpoint);
  return escape(urn ? endpoint.slice(4) : endpoint, urn);
}

export function aeIdOf(endpoint: string): string {
  return `C${resourceNameOf(endpoint)}`;
}

export function nodeNameOf(endpoint: string): string {
  return `${resourceNameOf(endpoint)}_n`;
}

/** The M2M-Node-ID of the device's <node>: its endpoint name without "urn:" (TS-0014 6.2.2.1). */
export function nodeIdOf(endpoint: string): string {
  return URN.test(endpoint) ? endpoint.slice(4) : endpoint;
}

/** The endpoint name a resource name stands for; undefined for names the mapping never makes. */
export function endpointOf(resourceName: string): string | undefined {
  if (!/^(?:[A-Za-z0-9.-]|_[0-9A-F]{2}|_[0-9a-f]{2})+$/.test(resourceName)) return undefined;
  const urn = resourceName.includes(URN_COLON);
  const bytes: number[] = [];
  for (let i = 0; i < resourceName.length; i++) {
    if (resourceName[i] !== '_') {
      bytes.push(resourceName.charCodeAt(i));
      continue;
    }
    const hex = resourceName.slice(i + 1, i + 3);
    // Each name uses one case; a mix is no name of ours.
    if (hex !== (urn ? hex.toUpperCase() : hex.toLowerCase())) return undefined;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  const decoded = Buffer.from(bytes).toString('utf8');
  const endpoint = urn ? `urn:${decoded}` : decoded;
  return resourceNameOf(endpoint) === resourceName ? endpoint : undefined;
}

function escape(text: string, upper: boolean): string {
  let out = '';
  for (const char of text) {
    if (UNRESERVED.test(char)) {
      out += char;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8')) {
      const hex = byte.toString(16).padStart(2, '0');
      out += `_${upper ? hex.toUpperCase() : hex}`;
    }
  }
  return out;
}
