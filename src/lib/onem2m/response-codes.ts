/** Names of the oneM2M response status codes (TS-0004 6.6.3). */
const STATUS_NAMES: Record<number, string> = {
  2000: 'OK',
  2001: 'Created',
  2002: 'Deleted',
  2004: 'Updated',
  4000: 'Bad Request',
  4004: 'Not Found',
  4005: 'Operation Not Allowed',
  4008: 'Request Timeout',
  4102: 'Contents Unacceptable',
  4103: 'Originator Has No Privilege',
  4105: 'Conflict',
  4106: 'Originator Not Authenticated',
  4107: 'Security Association Required',
  4108: 'Invalid Child Resource Type',
  4109: 'Not A Member',
  4110: 'Group Member Type Inconsistent',
  4111: 'Invalid Semantic Descriptor',
  4117: 'App Rule Validation Failed',
  4118: 'Operation Denied By Remote Entity',
  4119: 'Service Subscription Not Established',
  5000: 'Internal Server Error',
  5001: 'Not Implemented',
  5103: 'Target Not Reachable',
  5105: 'Receiver Has No Privilege',
  5106: 'Already Exists',
  5203: 'Target Not Subscribable',
  5204: 'Subscription Verification Initiation Failed',
  5205: 'Subscription Host Has No Privilege',
  5206: 'Non Blocking Request Not Supported',
  5207: 'Not Acceptable',
};

/** The HTTP status of a oneM2M status in a response (TS-0009 table 6.3.2-1); the class decides the rest. */
const HTTP_STATUS: Record<number, number> = {
  2001: 201,
  4004: 404,
  4005: 405,
  4008: 408,
  4103: 403,
  4105: 409,
  4106: 403,
  4107: 403,
  5001: 501,
  5103: 404,
  5105: 403,
};

export function httpStatusFor(rsc: number): number {
  return HTTP_STATUS[rsc] ?? (rsc < 3000 ? 200 : rsc < 5000 ? 400 : 500);
}

export type RegistrationOperation = 'register' | 'update' | 'deregister';

/**
 * The LwM2M answer a oneM2M outcome corresponds to, per the response code
 * tables of TS-0014 (6.2.2.2-4 and 6.3.2.2-4): Register 2001 → 2.01, 4105 →
 * 4.03, others → 4.00; Update 2004 → 2.04, 4004 → 4.04, others → 4.00;
 * De-register 2002 → 2.02, 4004 → 4.04, others → 4.00.
 */
export function lwm2mCodeFor(operation: RegistrationOperation, rsc: number): string {
  const table: Record<RegistrationOperation, Record<number, string>> = {
    register: { 2001: '2.01 Created', 4105: '4.03 Forbidden' },
    update: { 2004: '2.04 Changed', 4004: '4.04 Not Found' },
    deregister: { 2002: '2.02 Deleted', 4004: '4.04 Not Found' },
  };
  return table[operation][rsc] ?? '4.00 Bad Request';
}

/** "4105 Conflict", as failures are reported. */
export function describeStatus(rsc: number): string {
  return STATUS_NAMES[rsc] ? `${rsc} ${STATUS_NAMES[rsc]}` : String(rsc);
}

/** "4105 Conflict (LwM2M 4.03 Forbidden)", as failures of registration steps are reported. */
export function describeOutcome(rsc: number, operation?: RegistrationOperation): string {
  return operation ? `${describeStatus(rsc)} (LwM2M ${lwm2mCodeFor(operation, rsc)})` : describeStatus(rsc);
}
