/**
 * The client's errors. Every error the service answers is an RFC 9457 problem document
 * (`application/problem+json`); it becomes the class of its status:
 *
 *     CompanionError                      anything this client throws on purpose
 *     ├── ApiError                        a problem answered: status, type, title, detail, problem
 *     │   ├── BadRequest (400)
 *     │   │   └── ValidationFailed (422)  `errors`: each bad field by JSON pointer
 *     │   ├── Unauthorized (401)
 *     │   ├── Forbidden (403)
 *     │   ├── NotFound (404)
 *     │   ├── Conflict (409)
 *     │   ├── Gone (410)                  a session that ended
 *     │   ├── PayloadTooLarge (413)
 *     │   ├── RateLimited (429)           `retryAfterS`
 *     │   ├── ServiceUnavailable (503)    `retryAfterS`
 *     │   └── ServerError (500 and other 5xx)
 *     ├── ConnectionFailed                no answer: refused, reset, DNS
 *     └── Timeout                         the call's `timeoutMs` passed
 *
 * Other 4xx statuses (405, 415, 431) are a plain `ApiError`. A caller's own `AbortSignal` rejects
 * with the signal's reason, as `fetch` does.
 */

import type { components } from "./schema.js";

/** An RFC 9457 problem document as the service renders it. */
export type Problem = components["schemas"]["Problem"];
/** One invalid field of a 422. */
export type FieldProblem = components["schemas"]["FieldProblem"];

/** Root of every error this client throws on purpose. */
export class CompanionError extends Error {
  override name = "CompanionError";
}

/** The service answered with an error status; `problem` is its document as received. */
export class ApiError extends CompanionError {
  override name = "ApiError";
  /** The HTTP status. */
  readonly status: number;
  /** The problem type, `urn:companion:error:<code>`. */
  readonly type: string;
  /** A short summary of the problem type (`Not found`). */
  readonly title: string;
  /** What went wrong with this request. */
  readonly detail: string;
  /** The stable machine code (`session_not_found`, `rate_limited`...). */
  readonly code: string;
  /** The id the service logged the request under, to quote in a report. */
  readonly requestId: string | null;
  /** The request's OpenTelemetry trace id, when the service traces. */
  readonly traceId: string | null;
  /** The whole problem document. */
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail);
    this.problem = problem;
    this.status = problem.status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.code = problem.code;
    this.requestId = problem.request_id ?? null;
    this.traceId = problem.trace_id ?? null;
  }
}

/** 400: the request is malformed (bad JSON, a bad filter, a search mode the service lacks). */
export class BadRequest extends ApiError {
  override name = "BadRequest";
}

/** 422: the request parsed but a field is invalid; `errors` names each by JSON pointer. */
export class ValidationFailed extends BadRequest {
  override name = "ValidationFailed";
  /** Each invalid field: `pointer` (RFC 6901), `message`, `type`. */
  readonly errors: FieldProblem[];

  constructor(problem: Problem) {
    super(problem);
    this.errors = problem.errors ?? [];
  }
}

/** 401: no API key, or one that is unknown, revoked or expired. */
export class Unauthorized extends ApiError {
  override name = "Unauthorized";
}

/** 403: the key lacks the scope this needs. */
export class Forbidden extends ApiError {
  override name = "Forbidden";
}

/** 404: no such thing, or it belongs to another tenant. */
export class NotFound extends ApiError {
  override name = "NotFound";
}

/** 409: the request conflicts with the current state (a collection name that is taken). */
export class Conflict extends ApiError {
  override name = "Conflict";
}

/** 410: the thing existed and is gone for good (a session that ended). */
export class Gone extends ApiError {
  override name = "Gone";
}

/** 413: the body is larger than the service accepts. */
export class PayloadTooLarge extends ApiError {
  override name = "PayloadTooLarge";
}

/** 429: the key's rate limit, or its runs in flight; retry after `retryAfterS` seconds. */
export class RateLimited extends ApiError {
  override name = "RateLimited";
  /** Seconds the service asked to wait (`Retry-After`). */
  readonly retryAfterS: number | null;

  constructor(problem: Problem, retryAfterS: number | null) {
    super(problem);
    this.retryAfterS = retryAfterS;
  }
}

/** 503: a dependency or the sandbox pool is unavailable or busy; `retryAfterS` when it said. */
export class ServiceUnavailable extends ApiError {
  override name = "ServiceUnavailable";
  /** Seconds the service asked to wait (`Retry-After`), when it said. */
  readonly retryAfterS: number | null;

  constructor(problem: Problem, retryAfterS: number | null) {
    super(problem);
    this.retryAfterS = retryAfterS;
  }
}

/** 500 and other 5xx: the service failed (it logged why under `requestId`). */
export class ServerError extends ApiError {
  override name = "ServerError";
}

/** No answer at all: the connection was refused or reset, or the name did not resolve. */
export class ConnectionFailed extends CompanionError {
  override name = "ConnectionFailed";
}

/** The call took longer than its `timeoutMs` (retries and their waits included). */
export class Timeout extends CompanionError {
  override name = "Timeout";
}

type PlainApiError = new (problem: Problem) => ApiError;

const BY_STATUS: ReadonlyMap<number, PlainApiError> = new Map<number, PlainApiError>([
  [400, BadRequest],
  [401, Unauthorized],
  [403, Forbidden],
  [404, NotFound],
  [409, Conflict],
  [410, Gone],
  [413, PayloadTooLarge],
  [422, ValidationFailed],
]);

/** The error a problem document stands for; `retryAfterS` from the response's `Retry-After`. */
export function errorFromProblem(problem: Problem, retryAfterS: number | null = null): ApiError {
  const status = problem.status;
  if (status === 429) {
    return new RateLimited(problem, retryAfterS);
  }
  if (status === 503) {
    return new ServiceUnavailable(problem, retryAfterS);
  }
  const known = BY_STATUS.get(status);
  if (known !== undefined) {
    return new known(problem);
  }
  return status >= 500 ? new ServerError(problem) : new ApiError(problem);
}

/**
 * `Retry-After` in seconds: a number of seconds, or an HTTP date (a proxy's); null when absent
 * or unreadable. `now` is injectable for tests.
 */
export function retryAfterSeconds(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === "") {
    return null;
  }
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) {
    return Number(trimmed);
  }
  const when = Date.parse(trimmed);
  return Number.isNaN(when) ? null : Math.max(0, (when - now) / 1000);
}

/**
 * The problem document of an error response: the body when it is one, else a document made
 * from the status (a proxy's HTML page, an empty body).
 */
export function problemOf(status: number, statusText: string, body: string, path: string): Problem {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (isProblem(parsed)) {
    return typeof parsed.instance === "string" ? parsed : { ...parsed, instance: path };
  }
  const title = statusText || `HTTP ${status}`;
  return {
    type: "about:blank",
    title,
    status,
    detail: body.trim().slice(0, 500) || title,
    instance: path,
    code: "http_error",
  };
}

function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const record = value as Record<string, unknown>;
  return (
    typeof record["status"] === "number" &&
    typeof record["title"] === "string" &&
    typeof record["detail"] === "string" &&
    typeof record["code"] === "string" &&
    typeof record["type"] === "string"
  );
}
