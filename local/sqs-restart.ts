// What a stack start does with the ingest messages the previous (dead) process had in flight. Pure: no I/O.
//
// The counting rule: a receive that ended with the stack dying (kill -9, a crash, a process exit) counts
// against the message like a receive whose handling failed. A message that kills the stack every time it is
// handled (a poison message) would otherwise be handed out at every start for ever, and kill every start; with
// the rule it is parked in the DLQ once its receives reach the redrive policy's maxReceiveCount, as any other
// failing message is. A message that was merely in flight during one ordinary crash is handed out again at
// once and processed normally: one receive out of MAX_RECEIVES is spent, nothing else changes.

/** A message the previous process had received and not deleted (fauxqs still showed it in flight). */
export interface ReleasedMessage {
  messageId: string;
  queue: string;
  body: string;
  /** ApproximateReceiveCount, kept: the receive that died with the stack is counted. */
  receiveCount: number;
}

export interface ReleaseNote {
  /** The failure log's key for this message (the event's dedupKey, else `message:<id>`), as processBatch uses. */
  key: string;
  messageId: string;
  receiveCount: number;
  reason: string;
}

export interface ReleasePlan {
  /**
   * Messages handed out again that may have killed the previous process: the ingest consumer takes them one
   * at a time, so that if one of them kills the stack again, only it is charged with that receive.
   */
  suspects: string[];
  /** Messages whose receives are used up: the queue moves them to the DLQ at their next receive. */
  parked: ReleasedMessage[];
  /** The reason to record for each released message, shown by GET /v1/dlq if it ends there. */
  notes: ReleaseNote[];
}

/** The receive count a message released at a stack start keeps: the receive that died is not refunded. */
export function receiveCountAfterRelease(receiveCount: number): number {
  return receiveCount;
}

/** Whether the queue hands the message out again (true) or parks it in the DLQ at its next receive (false). */
export function handedOutAgain(receiveCount: number, maxReceives: number): boolean {
  // SQS (and fauxqs) move a message when a receive would make its count exceed maxReceiveCount.
  return receiveCountAfterRelease(receiveCount) < maxReceives;
}

function failureKey(m: ReleasedMessage): string {
  try {
    const ev = JSON.parse(m.body);
    if (ev && typeof ev === 'object' && typeof ev.dedupKey === 'string') return ev.dedupKey;
  } catch {
    /* not JSON: keyed by the message id, as processBatch does */
  }
  return `message:${m.messageId}`;
}

export function releaseReason(receiveCount: number, maxReceives: number): string {
  const base = `the coordinator stopped (killed or crashed) while this event was being processed (receive ${receiveCount} of ${maxReceives})`;
  return handedOutAgain(receiveCount, maxReceives)
    ? `${base}; handed out again at the restart`
    : `${base}; parked in the DLQ so that it cannot stop the coordinator again: find why processing it kills the process, then redrive it`;
}

export function planRelease(released: readonly ReleasedMessage[], queue: string, maxReceives: number): ReleasePlan {
  const mine = released.filter((m) => m.queue === queue);
  return {
    suspects: mine.filter((m) => handedOutAgain(m.receiveCount, maxReceives)).map((m) => m.messageId),
    parked: mine.filter((m) => !handedOutAgain(m.receiveCount, maxReceives)),
    notes: mine.map((m) => ({
      key: failureKey(m),
      messageId: m.messageId,
      receiveCount: receiveCountAfterRelease(m.receiveCount),
      reason: releaseReason(m.receiveCount, maxReceives),
    })),
  };
}
