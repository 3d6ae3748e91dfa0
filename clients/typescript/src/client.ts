/**
 * `Client`: every `/v1` capability of the service, typed from its OpenAPI document.
 *
 *     const client = new Client({ baseUrl: "http://127.0.0.1:8000", apiKey });
 *     const result = await client.run("print(6 * 7)");
 */

import { type InputFiles, type StreamEvent, inputFiles, streamEvents } from "./execution.js";
import { Collections } from "./knowledge.js";
import { Cache, Monitoring } from "./operations.js";
import { Sessions } from "./sessions.js";
import { Tools } from "./tools.js";
import {
  type ApiResponse,
  type Call,
  type ClientOptions,
  type QueryValue,
  type RequestOptions,
  Transport,
  splitOptions,
} from "./transport.js";
import type { ExecuteRequest, ExecutionResult, Liveness, Readiness, Runtimes } from "./types.js";

/** A run's fields besides `code` (`language` defaults to python; files as `{name: text or
 * bytes}` too), and the call's options. */
export type RunOptions = Omit<ExecuteRequest, "language" | "code" | "files"> & {
  language?: string | undefined;
  files?: InputFiles | undefined;
} & RequestOptions;

/** What `request` takes besides the method and path. */
export interface RawRequestOptions extends RequestOptions {
  query?: Record<string, QueryValue> | undefined;
  json?: unknown;
}

/** The service over HTTP. Methods throw the classes of `errors.ts`; 429 and 503 are retried. */
export class Client {
  /** Sessions: interpreters that keep their state between cells. */
  readonly sessions: Sessions;
  /** Tools: list, get, invoke, batch, export. */
  readonly tools: Tools;
  /** Collections, documents, uploads and search. */
  readonly collections: Collections;
  /** The tiered cache's statistics and invalidation. */
  readonly cache: Cache;
  /** Monitoring report, alerts, profiling report and traces. */
  readonly monitoring: Monitoring;
  private readonly transport: Transport;

  constructor(options: ClientOptions) {
    this.transport = new Transport(options);
    this.sessions = new Sessions(this.transport);
    this.tools = new Tools(this.transport);
    this.collections = new Collections(this.transport);
    this.cache = new Cache(this.transport);
    this.monitoring = new Monitoring(this.transport);
  }

  /** The base URL calls go to. */
  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  /** Run a snippet in a sandbox; user errors (exceptions, timeouts, limits) are in the result
   * (`status`, `error`), not thrown. */
  async run(code: string, options: RunOptions = {}): Promise<ExecutionResult> {
    return this.execute(...runCall(code, options));
  }

  /** `POST /v1/execute` with a body as the service takes it. */
  async execute(request: ExecuteRequest, options: RequestOptions = {}): Promise<ExecutionResult> {
    const call = { method: "POST", path: "/v1/execute", json: request } as const;
    return (await this.transport.json<ExecutionResult>(call, options)).data;
  }

  /** `run`, streamed: `stdout`/`stderr` text and `result`s as the run produces them, then `done`
   * with the whole result. Leaving the loop early (or aborting the signal) stops the run. */
  async *runStream(
    code: string,
    options: RunOptions = {},
  ): AsyncGenerator<StreamEvent, void, undefined> {
    yield* this.executeStream(...runCall(code, options));
  }

  /** `executeStream`: `POST /v1/execute` streamed, with a body as the service takes it. */
  async *executeStream(
    request: ExecuteRequest,
    options: RequestOptions = {},
  ): AsyncGenerator<StreamEvent, void, undefined> {
    const call = {
      method: "POST",
      path: "/v1/execute",
      json: request,
      accept: "text/event-stream",
    } as const;
    yield* streamEvents<ExecutionResult>(await this.transport.open(call, options), call.path);
  }

  /** Languages, versions, limits (default and maximum) and the isolation layers of every run. */
  async runtimes(options: RequestOptions = {}): Promise<Runtimes> {
    return (await this.transport.json<Runtimes>({ method: "GET", path: "/v1/runtimes" }, options))
      .data;
  }

  /** `GET /livez`: the process answers. */
  async live(options: RequestOptions = {}): Promise<Liveness> {
    return (await this.transport.json<Liveness>({ method: "GET", path: "/livez" }, options)).data;
  }

  /** `GET /readyz`: every check with its timing; `ServiceUnavailable` (not retried) when a
   * critical one fails, its `problem.checks` saying which. */
  async ready(options: RequestOptions = {}): Promise<Readiness> {
    const call = { method: "GET", path: "/readyz" } as const;
    return (await this.transport.json<Readiness>(call, { maxRetries: 0, ...options })).data;
  }

  /** Any call, with this client's key, timeout, retries and errors; the answer's status and
   * headers come back with its JSON (e.g. `X-Companion-Trace-Id`). */
  async request<T = unknown>(
    method: Call["method"],
    path: string,
    options: RawRequestOptions = {},
  ): Promise<ApiResponse<T>> {
    const [{ query, json }, request] = splitOptions(options);
    return this.transport.json<T>({ method, path, query, json }, request);
  }
}

function runCall(code: string, options: RunOptions): [ExecuteRequest, RequestOptions] {
  const [{ language, files, ...fields }, request] = splitOptions(options);
  const body: ExecuteRequest = { ...fields, language: language ?? "python", code };
  if (files !== undefined) {
    body.files = inputFiles(files);
  }
  return [body, request];
}
