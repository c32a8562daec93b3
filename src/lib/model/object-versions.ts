/** Orders object versions "major.minor" numerically ("1.10" after "1.2"). */
export function compareVersions(a: string, b: string): number {
  const [aMajor, aMinor = 0] = a.split('.').map(Number);
  const [bMajor, bMinor = 0] = b.split('.').map(Number);
  return aMajor - bMajor || aMinor - bMinor;
}

/**
 * The version of the objects the LwM2M specification itself defines that a
 * client means when its Register gives no "ver" for them: the versions of
 * Appendix E of its LwM2M version (1.1: Security 1.1, Server 1.1, Device 1.1,
 * Connectivity Monitoring 1.2, the rest 1.0, as Zephyr's client reads it too).
 * LwM2M 1.2 publishes Security and Server 1.2 with it. Every other object,
 * and every object of a 1.0 client, is 1.0 without "ver".
 */
const CORE_VERSIONS: Record<string, Readonly<Record<number, string>>> = {
  '1.1': { 0: '1.1', 1: '1.1', 3: '1.1', 4: '1.2' },
  '1.2': { 0: '1.2', 1: '1.2', 3: '1.1', 4: '1.2' },
};

/** The object version a client means: its "ver", else what its LwM2M version implies. */
export function impliedVersion(objectId: number, announced: string | undefined, lwm2mVersion: string): string {
  return announced ?? CORE_VERSIONS[lwm2mVersion]?.[objectId] ?? '1.0';
}
