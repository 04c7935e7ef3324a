// Errors with literal names: ASL Catch clauses and the HTTP layer match on them.

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class BadRequest extends HttpError {
  override readonly name = 'BadRequest';
  constructor(message: string, code = 'BadRequest') {
    super(400, code, message);
  }
}

export class Unauthorized extends HttpError {
  override readonly name = 'Unauthorized';
  constructor(message = 'missing or unknown bearer token') {
    super(401, 'Unauthorized', message);
  }
}

export class Forbidden extends HttpError {
  override readonly name = 'Forbidden';
  constructor(message: string) {
    super(403, 'Forbidden', message);
  }
}

export class NotFound extends HttpError {
  override readonly name = 'NotFound';
  constructor(message: string) {
    super(404, 'NotFound', message);
  }
}

export class Conflict extends HttpError {
  override readonly name = 'Conflict';
  constructor(message: string, code = 'Conflict') {
    super(409, code, message);
  }
}

export class PayloadTooLarge extends HttpError {
  override readonly name = 'PayloadTooLarge';
  constructor(message: string) {
    super(413, 'PayloadTooLarge', message);
  }
}

/** A workflow step was asked about a reboot that is not stored: retrying will not help. */
export class RebootNotFound extends Error {
  override readonly name = 'RebootNotFound';
}

/** Optimistic concurrency gave up after its retries (heavy contention on one reboot). */
export class ConcurrentUpdate extends Error {
  override readonly name = 'ConcurrentUpdate';
}
