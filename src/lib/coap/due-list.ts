/** The links an exchange carries to be in a DueList; both undefined while it is in none. */
export interface DueLinks<T> {
  dueNext: T | undefined;
  duePrev: T | undefined;
}

/**
 * The exchanges an endpoint's clock looks at: an intrusive doubly-linked list
 * (the links live in the exchanges), so adding and removing allocate nothing
 * and leave no table behind for the collector to keep finished exchanges alive.
 */
export class DueList<T extends DueLinks<T>> {
  head: T | undefined = undefined;

  has(item: T): boolean {
    return item.duePrev !== undefined || this.head === item;
  }

  /** At the head, so a walk from the head in progress does not meet it; nothing if it is in already. */
  add(item: T): void {
    if (this.has(item)) return;
    item.dueNext = this.head;
    if (this.head) this.head.duePrev = item;
    this.head = item;
  }

  remove(item: T): void {
    if (!this.has(item)) return;
    if (item.duePrev) item.duePrev.dueNext = item.dueNext;
    else this.head = item.dueNext;
    if (item.dueNext) item.dueNext.duePrev = item.duePrev;
    item.dueNext = undefined;
    item.duePrev = undefined;
  }
}
