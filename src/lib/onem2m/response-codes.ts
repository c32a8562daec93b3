/** Names of the oneM2M response status codes a CSE answers the IPE with (TS-0004 6.6.3). */
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
};

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

/** "4105 Conflict (LwM2M 4.03 Forbidden)", as failures are reported. */
export function describeOutcome(rsc: number, operation?: RegistrationOperation): string {
  const name = STATUS_NAMES[rsc] ? `${rsc} ${STATUS_NAMES[rsc]}` : String(rsc);
  return operation ? `${name} (LwM2M ${lwm2mCodeFor(operation, rsc)})` : name;
}
