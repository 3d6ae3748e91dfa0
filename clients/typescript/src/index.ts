/**
 * companion-client: the TypeScript client of Companion BaaS (sandboxed code execution, sessions,
 * tools, knowledge search, cache and monitoring), on `fetch`, with no runtime dependency.
 */

export { Client, type RawRequestOptions, type RunOptions } from "./client.js";
export {
  ApiError,
  BadRequest,
  CompanionError,
  Conflict,
  ConnectionFailed,
  type FieldProblem,
  Forbidden,
  Gone,
  NotFound,
  PayloadTooLarge,
  type Problem,
  RateLimited,
  ServerError,
  ServiceUnavailable,
  Timeout,
  Unauthorized,
  ValidationFailed,
  errorFromProblem,
  retryAfterSeconds,
} from "./errors.js";
export {
  type AnyResult,
  type InputFiles,
  type ServerSentEvent,
  type StreamEvent,
  bytesOf,
  fromBase64,
  images,
  inputFiles,
  lastValue,
  returnedFile,
  serverSentEvents,
  toBase64,
} from "./execution.js";
export {
  type Ensured,
  type SearchOptions,
  type UploadFile,
  type UploadOptions,
  Collections,
} from "./knowledge.js";
export { Cache, Monitoring, type ProfilingReportOptions } from "./operations.js";
export type { components, operations, paths } from "./schema.js";
export { type CellOptions, Session, type SessionOptions, Sessions } from "./sessions.js";
export { type BatchOptions, type ExportOptions, type InvokeOptions, Tools } from "./tools.js";
export {
  type ApiResponse,
  type ClientOptions,
  type RequestOptions,
  type Sleep,
  timerSleep,
} from "./transport.js";
export type * from "./types.js";
