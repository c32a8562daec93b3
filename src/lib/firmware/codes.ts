/**
 * The states and result codes of the Firmware Update object (/5, OMA
 * registry 5.xml, object versions 1.0-1.2) and the Software Management
 * object (/9, 9.xml), with what each means.
 */

/** /5/0/3 State. */
export const FirmwareState = { Idle: 0, Downloading: 1, Downloaded: 2, Updating: 3 } as const;

export const FIRMWARE_STATE_NAMES: Record<number, string> = { 0: 'Idle', 1: 'Downloading', 2: 'Downloaded', 3: 'Updating' };

/** /5/0/5 Update Result. */
export const FirmwareResult = {
  Initial: 0,
  Success: 1,
  NotEnoughFlash: 2,
  OutOfRam: 3,
  ConnectionLost: 4,
  IntegrityCheckFailure: 5,
  UnsupportedPackageType: 6,
  InvalidUri: 7,
  UpdateFailed: 8,
  UnsupportedProtocol: 9,
  Cancelled: 10,
  Deferred: 11,
} as const;

export interface ResultMeaning {
  /** A stable name for flows to switch on, such as "not-enough-flash". */
  code: string;
  /** What the device says, in words. */
  text: string;
  /** Whether the same package may succeed when sent again (a lost connection may; a full flash will not). */
  retryable: boolean;
}

/** The failure codes of /5/0/5 by their meaning. */
export const FIRMWARE_RESULTS: Record<number, ResultMeaning> = {
  2: { code: 'not-enough-flash', text: 'not enough flash memory for the new firmware package', retryable: false },
  3: { code: 'out-of-ram', text: 'out of RAM during the download', retryable: true },
  4: { code: 'connection-lost', text: 'connection lost during the download', retryable: true },
  5: { code: 'integrity-check-failure', text: 'integrity check failure of the downloaded package', retryable: true },
  6: { code: 'unsupported-package-type', text: 'unsupported package type', retryable: false },
  7: { code: 'invalid-uri', text: 'invalid URI', retryable: false },
  8: { code: 'update-failed', text: 'firmware update failed', retryable: true },
  9: { code: 'unsupported-protocol', text: 'unsupported protocol in the package URI', retryable: false },
  10: { code: 'cancelled', text: 'firmware update cancelled', retryable: false },
};

/** /9/x/7 Update State. */
export const SoftwareState = { Initial: 0, DownloadStarted: 1, Downloaded: 2, Delivered: 3, Installed: 4 } as const;

export const SOFTWARE_STATE_NAMES: Record<number, string> = { 0: 'INITIAL', 1: 'DOWNLOAD STARTED', 2: 'DOWNLOADED', 3: 'DELIVERED', 4: 'INSTALLED' };

/** /9/x/9 Update Result: the values that are not failures. */
export const SoftwareResult = { Initial: 0, Downloading: 1, Installed: 2, DownloadedVerified: 3 } as const;

/** The failure codes of /9/x/9 by their meaning (4-49 and 60-200 are reserved for expansion). */
export const SOFTWARE_RESULTS: Record<number, ResultMeaning> = {
  50: { code: 'not-enough-storage', text: 'not enough storage for the new software package', retryable: false },
  51: { code: 'out-of-memory', text: 'out of memory during the download', retryable: true },
  52: { code: 'connection-lost', text: 'connection lost during the download', retryable: true },
  53: { code: 'integrity-check-failure', text: 'package integrity check failure', retryable: true },
  54: { code: 'unsupported-package-type', text: 'unsupported package type', retryable: false },
  56: { code: 'invalid-uri', text: 'invalid URI', retryable: false },
  57: { code: 'device-error', text: 'device defined update error', retryable: true },
  58: { code: 'installation-failure', text: 'software installation failure', retryable: true },
  59: { code: 'uninstallation-failure', text: 'uninstallation failure', retryable: false },
};

/** A failure code outside the tables: reported with its number. */
export function unknownResult(value: number): ResultMeaning {
  return { code: `result-${value}`, text: `Update Result ${value}, which the object's definition does not name`, retryable: false };
}

/** /5/0/9 Firmware Update Delivery Method. */
export const DeliveryMethod = { PullOnly: 0, PushOnly: 1, Both: 2 } as const;

/** /5/0/8 Firmware Update Protocol Support, by URI scheme. */
export const PROTOCOL_OF_SCHEME: Record<string, number> = { coap: 0, coaps: 1, http: 2, https: 3, 'coap+tcp': 4, 'coaps+tcp': 5 };

export const SCHEME_OF_PROTOCOL: Record<number, string> = Object.fromEntries(Object.entries(PROTOCOL_OF_SCHEME).map(([scheme, value]) => [value, scheme]));
