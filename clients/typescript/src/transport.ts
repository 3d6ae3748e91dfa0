/**
 * One HTTP call to the service over `fetch`: the key, a timeout, retries of 429 and 503 (waiting
 * what `Retry-After` says, else an exponential backoff with jitter) and problem documents turned
 * into the classes of `errors.ts`. Every capability's module goes through `Transport`.
 */

import {
  ApiError,
  CompanionError,
  ConnectionFailed,
  RateLimited,
  ServiceUnavailable,
  Timeout,
  errorFromProblem,
  problemOf,
  retryAfterSeconds,
} from "./errors.js";

/** Waits `ms` milliseconds, or rejects with the signal's reason when it aborts first. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** How a `Client` reaches the service. */
export interface ClientOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:8000`. */
  baseUrl: string;
  /** An API key (`cmp_...`), sent as `Authorization: Bearer`. */
  apiKey?: string | undefined;
  /** Longest a call may take, retries and their waits included (default 60 000); a retry whose
   * wait would outlast it is not waited: the error is thrown. */
  timeoutMs?: number | undefined;
  /** Retries of a 429 or 503 answer (default 2; 0 turns retries off). */
  maxRetries?: number | undefined;
  /** First backoff when the answer has no `Retry-After`; doubled on each retry (default 500). */
  retryBaseDelayMs?: number | undefined;
  /** A longer wait (a `Retry-After: 3600`) is not waited: the error is thrown (default 30 000). */
  maxRetryDelayMs?: number | undefined;
  /** How retries wait; tests inject their own (default: a timer that the call's signal cancels). */
  sleep?: Sleep | undefined;
  /** The `fetch` to use (default: the global one, Node 20's). */
  fetch?: typeof globalThis.fetch | undefined;
  /** Headers sent with every call. */
  headers?: Record<string, string> | undefined;
}

/** Per-call options every method takes last. */
export interface RequestOptions {
  /** Cancels the call (and a streamed run: the service stops it). */
  signal?: AbortSignal | undefined;
  /** This call's timeout instead of the client's. */
  timeoutMs?: number | undefined;
  /** This call's retries instead of the client's. */
  maxRetries?: number | undefined;
  /** Extra headers for this call (e.g. `X-Companion-Trace: 1`). */
  headers?: Record<string, string> | undefined;
}

const REQUEST_KEYS: ReadonlySet<string> = new Set(["signal", "timeoutMs", "maxRetries", "headers"]);

/** An options bag split in two: the request's own fields, and the call's `RequestOptions`. */
export function splitOptions<T extends RequestOptions>(
  options: T,
): [Omit<T, keyof RequestOptions>, RequestOptions] {
  const fields: Record<string, unknown> = {};
  const request: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    (REQUEST_KEYS.has(name) ? request : fields)[name] = value;
  }
  return [fields as Omit<T, keyof RequestOptions>, request as RequestOptions];
}

/** A query string value; `null` and `undefined` leave the parameter out. */
export type QueryValue = string | number | boolean | null | undefined;

/** One call as the capability modules describe it. */
export interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** The path under the base URL, its variable parts already encoded (`segment`). */
  path: string;
  query?: Record<string, QueryValue> | undefined;
  /** A JSON body (serialised once, so every retry sends the same bytes). */
  json?: unknown;
  /** A body sent as it is: `FormData` (multipart), bytes or a `Blob`. */
  body?: BodyInit | undefined;
  contentType?: string | undefined;
  accept?: string | undefined;
}

/** A successful answer: its status, headers and decoded body. */
export interface ApiResponse<T> {
  status: number;
  headers: Headers;
  data: T;
}

/** An answer with a status below 400 whose body is still unread; `failure` maps an error met
 * while reading it (a timeout, an abort, a dropped connection). */
export interface OpenResponse {
  response: Response;
  failure: (error: unknown) => unknown;
}

const DEFAULTS = {
  timeoutMs: 60_000,
  maxRetries: 2,
  retryBaseDelayMs: 500,
  maxRetryDelayMs: 30_000,
};

/** Encode one variable path segment (a collection name, a session id). */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

/** Encode a relative file path, keeping its `/` separators. */
export function filePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

/** The default `Sleep`: a timer the signal cancels. */
export const timerSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** The calls of one client: base URL, key, timeout and retry policy. */
export class Transport {
  readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly sleep: Sleep;
  private readonly fetcher: typeof globalThis.fetch;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.headers = { ...options.headers };
    if (options.apiKey) {
      this.headers["Authorization"] = `Bearer ${options.apiKey}`;
    }
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.maxRetries = options.maxRetries ?? DEFAULTS.maxRetries;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? DEFAULTS.retryBaseDelayMs;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? DEFAULTS.maxRetryDelayMs;
    this.sleep = options.sleep ?? timerSleep;
    // Called unbound: some fetch implementations refuse a `this` other than the global object.
    const fetcher = options.fetch ?? globalThis.fetch;
    this.fetcher = (input, init) => fetcher(input, init);
  }

  /** The call's JSON answer (`undefined` for an empty body, as a 204 has). */
  async json<T>(call: Call, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const answer = await this.text({ accept: "application/json", ...call }, options);
    let data: T;
    try {
      data = (answer.data === "" ? undefined : JSON.parse(answer.data)) as T;
    } catch {
      throw new CompanionError(`${call.method} ${call.path}: the answer is not JSON`);
    }
    return { status: answer.status, headers: answer.headers, data };
  }

  /** The call's answer as text (a text or HTML report). */
  async text(call: Call, options: RequestOptions = {}): Promise<ApiResponse<string>> {
    const { response, failure } = await this.open(call, options);
    try {
      return { status: response.status, headers: response.headers, data: await response.text() };
    } catch (error) {
      throw failure(error);
    }
  }

  /** The call's answer as bytes (a downloaded file). */
  async bytes(call: Call, options: RequestOptions = {}): Promise<ApiResponse<Uint8Array>> {
    const { response, failure } = await this.open(call, options);
    try {
      const data = new Uint8Array(await response.arrayBuffer());
      return { status: response.status, headers: response.headers, data };
    } catch (error) {
      throw failure(error);
    }
  }

  /**
   * Send the call, retrying 429 and 503 answers; the first answer below 400, its body unread
   * (a stream is read by the caller), or the error the final answer stands for.
   */
  async open(call: Call, options: RequestOptions = {}): Promise<OpenResponse> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const maxRetries = options.maxRetries ?? this.maxRetries;
    const started = performance.now();
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    const url = this.url(call);
    const headers: Record<string, string> = { ...this.headers, ...options.headers };
    if (call.accept !== undefined) {
      headers["Accept"] = call.accept;
    }
    let body = call.body;
    if (call.json !== undefined) {
      body = JSON.stringify(call.json);
      headers["Content-Type"] = "application/json";
    } else if (call.contentType !== undefined) {
      headers["Content-Type"] = call.contentType;
    }
    const failure = (error: unknown): unknown => {
      if (error instanceof CompanionError) {
        return error;
      }
      if (deadline.aborted) {
        return new Timeout(`${call.method} ${call.path} took longer than ${timeoutMs} ms`, {
          cause: error,
        });
      }
      if (options.signal?.aborted) {
        return options.signal.reason;
      }
      return new ConnectionFailed(`${call.method} ${url}: ${describe(error)}`, { cause: error });
    };
    for (let attempt = 0; ; attempt += 1) {
      let error: ApiError;
      try {
        const init: RequestInit = { method: call.method, headers, signal };
        if (body !== undefined) {
          init.body = body;
        }
        const response = await this.fetcher(url, init);
        if (response.status < 400) {
          return { response, failure };
        }
        error = await errorOf(response, call.path);
      } catch (caught) {
        throw failure(caught);
      }
      const delayMs = attempt < maxRetries ? this.retryDelayMs(error, attempt) : null;
      // A wait the call's timeout would cut short is not started: the refusal (with its
      // `retryAfterS`) says more than the `Timeout` it would end in.
      if (delayMs === null || performance.now() - started + delayMs >= timeoutMs) {
        throw error;
      }
      try {
        await this.sleep(delayMs, signal);
      } catch (caught) {
        throw failure(caught);
      }
    }
  }

  /** How long to wait before retrying after `error`, or null when it must not be retried. */
  private retryDelayMs(error: ApiError, attempt: number): number | null {
    if (!(error instanceof RateLimited || error instanceof ServiceUnavailable)) {
      return null;
    }
    let delayMs: number;
    if (error.retryAfterS !== null) {
      delayMs = error.retryAfterS * 1000;
    } else {
      // Full backoff halved, plus up to the other half at random: clients that failed together
      // do not all come back together.
      const backoff = Math.min(this.maxRetryDelayMs, this.retryBaseDelayMs * 2 ** attempt);
      delayMs = backoff / 2 + (Math.random() * backoff) / 2;
    }
    return delayMs > this.maxRetryDelayMs ? null : delayMs;
  }

  private url(call: Call): string {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value !== null && value !== undefined) {
        query.append(name, String(value));
      }
    }
    const search = query.toString();
    return `${this.baseUrl}${call.path}${search ? `?${search}` : ""}`;
  }
}

async function errorOf(response: Response, path: string): Promise<ApiError> {
  const problem = problemOf(response.status, response.statusText, await response.text(), path);
  return errorFromProblem(problem, retryAfterSeconds(response.headers.get("retry-after")));
}

function describe(error: unknown): string {
  // Node's fetch rejects with `TypeError: fetch failed`; the socket's error is its cause.
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    return typeof code === "string" ? `${code} (${cause.message})` : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}
