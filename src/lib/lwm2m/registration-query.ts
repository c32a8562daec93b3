import type { Registration } from './registration';

export type SortKey = 'endpoint' | 'registeredAt' | 'lastSeen';
export const SORT_KEYS: readonly SortKey[] = ['endpoint', 'registeredAt', 'lastSeen'];

interface RegistrationQuery {
  /** Endpoint names that start with (prefix) or contain (substring) this text, ignoring case; every device when empty. */
  search?: string;
  match?: 'prefix' | 'substring';
  sort?: SortKey;
  descending?: boolean;
  /** The page after this cursor (the `next` of the page before), or before it (`previous`). */
  after?: string;
  before?: string;
  limit: number;
}

interface RegistrationPage {
  /** Devices that match the search. */
  total: number;
  /** How many matching devices sort before this page. */
  offset: number;
  items: Registration[];
  next?: string;
  previous?: string;
}

/** A position in the sort order: the sort value and the endpoint name, which breaks ties. */
interface Cursor {
  value: number | string;
  endpoint: string;
}

function sortValue(registration: Registration, sort: SortKey): number | string {
  return sort === 'endpoint' ? registration.endpoint : sort === 'registeredAt' ? registration.registeredAt : registration.lastSeen;
}

function encodeCursor(registration: Registration, sort: SortKey): string {
  return sort === 'endpoint' ? registration.endpoint : `${sortValue(registration, sort)}:${registration.endpoint}`;
}

function decodeCursor(text: string, sort: SortKey): Cursor {
  if (sort === 'endpoint') return { value: text, endpoint: text };
  const colon = text.indexOf(':');
  return { value: Number(text.slice(0, colon)), endpoint: text.slice(colon + 1) };
}

/**
 * One page of a fleet, sorted and searched, without sorting the fleet: one
 * pass picks the matches after the cursor, a small heap the `limit` first of
 * them, so a page of 50 out of 100,000 costs a scan, not a sort, and nothing
 * is kept between requests (the registration hot path pays nothing for the console).
 */
export function queryRegistrations(registrations: Iterable<Registration>, query: RegistrationQuery): RegistrationPage {
  const sort = query.sort ?? 'endpoint';
  const sign = query.descending ? -1 : 1;
  const needle = (query.search ?? '').toLowerCase();
  const prefix = query.match !== 'substring';
  const backwards = query.before !== undefined;
  const cursor = query.after !== undefined ? decodeCursor(query.after, sort) : query.before !== undefined ? decodeCursor(query.before, sort) : undefined;
  // Order in the direction of the walk: forwards from `after`, backwards from `before`.
  const walk = backwards ? -sign : sign;
  const compare = (a: Registration, b: Registration | Cursor): number => {
    const left = sortValue(a, sort);
    const right = 'value' in b ? b.value : sortValue(b, sort);
    if (left !== right) return (left < right ? -1 : 1) * walk;
    return a.endpoint === b.endpoint ? 0 : (a.endpoint < b.endpoint ? -1 : 1) * walk;
  };
  // The matches beyond the cursor, then the `limit + 1` first of them (the extra one tells whether there is more).
  const candidates: Registration[] = [];
  let total = 0;
  let skipped = 0;
  for (const registration of registrations) {
    if (needle && !(prefix ? startsWithFolded(registration.endpoint, needle) : includesFolded(registration.endpoint, needle))) continue;
    total++;
    if (cursor && compare(registration, cursor) <= 0) {
      skipped++;
      continue;
    }
    candidates.push(registration);
  }
  const heap = firstOf(candidates, query.limit + 1, compare);
  heap.sort(compare);
  const more = heap.length > query.limit;
  const items = heap.slice(0, query.limit);
  if (backwards) items.reverse();
  const offset = backwards ? total - skipped - items.length : skipped;
  const page: RegistrationPage = { total, offset, items };
  const first = items[0];
  const last = items[items.length - 1];
  if (last && (backwards ? cursor !== undefined : more)) page.next = encodeCursor(last, sort);
  if (first && (backwards ? more : cursor !== undefined)) page.previous = encodeCursor(first, sort);
  return page;
}

/**
 * Endpoint names for completion, in one pass over the fleet: those that
 * start with the text (ignoring case) first, then those that contain it,
 * each group sorted, `limit` at most.
 */
export function completeEndpoints(registrations: Iterable<Registration>, text: string, limit: number): string[] {
  const needle = text.toLowerCase();
  const starting: Registration[] = [];
  const containing: Registration[] = [];
  for (const registration of registrations) {
    if (startsWithFolded(registration.endpoint, needle)) starting.push(registration);
    // With enough names that start with the text, those that only contain it are not shown.
    else if (starting.length < limit && includesFolded(registration.endpoint, needle)) containing.push(registration);
  }
  const byName = (a: Registration, b: Registration) => (a.endpoint === b.endpoint ? 0 : a.endpoint < b.endpoint ? -1 : 1);
  const first = firstOf(starting, limit, byName).sort(byName);
  const then = first.length < limit ? firstOf(containing, limit - first.length, byName).sort(byName) : [];
  return [...first, ...then].map((registration) => registration.endpoint);
}

/** ASCII capitals folded to lower case; the needle is lower case already. */
function fold(code: number): number {
  return code >= 65 && code <= 90 ? code + 32 : code;
}

/** Whether a name starts with the needle, ignoring case, without copying the name (this runs for every device of a fleet). */
function startsWithFolded(name: string, needle: string): boolean {
  if (name.length < needle.length) return false;
  for (let i = 0; i < needle.length; i++) if (fold(name.charCodeAt(i)) !== needle.charCodeAt(i)) return false;
  return true;
}

/** Whether a name contains the needle, ignoring case; only names with capitals are copied. */
function includesFolded(name: string, needle: string): boolean {
  return name.includes(needle) || (hasCapital(name) && name.toLowerCase().includes(needle));
}

function hasCapital(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if ((code >= 65 && code <= 90) || code > 127) return true;
  }
  return false;
}

type Compare = (a: Registration, b: Registration) => number;

/**
 * The `count` first candidates (unsorted), kept in a max-heap. A fleet is
 * stored in the order it registered, so sorting by registration time or by
 * names given out in order meets the candidates sorted one way or the other:
 * walked from their worse end, each would beat the heap's worst and cost a
 * sift; walked from their better end, most cost one comparison. The ends say which is which.
 */
function firstOf(candidates: Registration[], count: number, compare: Compare): Registration[] {
  const n = candidates.length;
  if (n <= count) return candidates;
  const fromEnd = compare(candidates[n - 1], candidates[0]) < 0;
  const heap: Registration[] = [];
  for (let i = 0; i < n; i++) {
    const registration = candidates[fromEnd ? n - 1 - i : i];
    if (heap.length < count) {
      heap.push(registration);
      siftUp(heap, heap.length - 1, compare);
    } else if (compare(registration, heap[0]) < 0) {
      heap[0] = registration;
      siftDown(heap, 0, compare);
    }
  }
  return heap;
}

function siftUp(heap: Registration[], at: number, compare: Compare): void {
  while (at > 0) {
    const parent = (at - 1) >> 1;
    if (compare(heap[at], heap[parent]) <= 0) return;
    [heap[at], heap[parent]] = [heap[parent], heap[at]];
    at = parent;
  }
}

function siftDown(heap: Registration[], at: number, compare: Compare): void {
  for (;;) {
    const left = 2 * at + 1;
    const right = left + 1;
    let largest = at;
    if (left < heap.length && compare(heap[left], heap[largest]) > 0) largest = left;
    if (right < heap.length && compare(heap[right], heap[largest]) > 0) largest = right;
    if (largest === at) return;
    [heap[at], heap[largest]] = [heap[largest], heap[at]];
    at = largest;
  }
}
