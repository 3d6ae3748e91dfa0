/**
 * Names for the request and response types of the service, all taken from `schema.ts` (generated
 * from the service's OpenAPI document), so a change on the service shows up here as a type error.
 */

import type { components, operations } from "./schema.js";

type Schemas = components["schemas"];

/** The JSON body an operation takes. */
export type JsonBody<Op extends keyof operations> = operations[Op] extends {
  requestBody?: { content: { "application/json": infer Body } };
}
  ? NonNullable<Body>
  : never;

/** The JSON body an operation answers with `Status`. */
export type JsonAnswer<Op extends keyof operations, Status extends number = 200> =
  operations[Op]["responses"] extends Record<
    Status,
    { content: { "application/json": infer Body } }
  >
    ? Body
    : never;

/** The query parameters an operation takes. */
export type QueryOf<Op extends keyof operations> = NonNullable<
  operations[Op]["parameters"]["query"]
>;

// Code execution
/** The body of `POST /v1/execute`. */
export type ExecuteRequest = JsonBody<"execute_v1_execute_post">;
/** A run's result: status, output, the last value, figures and the files it wrote. */
export type ExecutionResult = Schemas["ExecutionResult"];
/** One representation of a result: the last value, a `display(...)` or a figure. */
export type RichResult = Schemas["RichResult"];
/** A file the run wrote or changed (its bytes in base64). */
export type OutputFile = Schemas["OutputFile"];
/** A file sent into a run or a session's workspace (text, or bytes in base64). */
export type SourceFile = NonNullable<ExecuteRequest["files"]>[number];
/** Limits a request may lower (never raise). */
export type LimitOverrides = NonNullable<ExecuteRequest["limits"]>;
/** Languages, versions, limits and isolation layers (`GET /v1/runtimes`). */
export type Runtimes = Schemas["Runtimes"];

// Sessions
/** The body of `POST /v1/sessions`. */
export type SessionCreate = JsonBody<"create_session_v1_sessions_post">;
/** The body of `POST /v1/sessions/{id}/execute`. */
export type CellRequest = JsonBody<"execute_cell_v1_sessions__session_id__execute_post">;
/** A cell's result: a run's result plus `session_id`, `execution_count` and `session_ended`. */
export type CellResult = Schemas["CellResult"];
/** One session: its state, limits, counts and times. */
export type SessionInfo = Schemas["SessionInfo"];
/** The caller's open sessions. */
export type SessionList = Schemas["SessionList"];
/** The files of a session's workspace. */
export type WorkspaceListing = Schemas["WorkspaceListing"];

// Tools
/** One tool with its schemas, as `GET /v1/tools` lists it. */
export type ToolSummary = Schemas["ToolSummary"];
/** One call's outcome; a tool's own failure is `ok: false`. */
export type ToolResult = Schemas["ResultBody"];
/** One call of a batch. */
export type BatchCall = Schemas["BatchCall"];
/** Every call's outcome, in the order sent. */
export type BatchResult = Schemas["BatchResult"];
/** The formats `GET /v1/tools` exports tools in. */
export type ToolFormat = NonNullable<QueryOf<"list_tools_v1_tools_get">["format"]>;

// Knowledge
/** One document to add. */
export type DocumentIn = Schemas["DocumentIn"];
/** The ids of the written documents, in request order. */
export type DocumentIds = Schemas["DocumentIds"];
/** A search; `filter` is documented in docs/knowledge.md. */
export type SearchRequest = Schemas["SearchRequest"];
/** A collection: its counts and the model of its vectors. */
export type Collection = Schemas["CollectionInfo"];
/** A collection with its embedding queue's progress (`GET` one). */
export type CollectionDetail = Schemas["CollectionDetail"];
/** Every collection of the tenant. */
export type CollectionListing = Schemas["CollectionListing"];
/** A stored document. */
export type StoredDocument = Schemas["StoredDocument"];
/** One page of a collection's documents, ordered by id; `next_after` fetches the next. */
export type DocumentPage = Schemas["DocumentPage"];
/** A search's answer: passages in document order, with timings and warnings. */
export type SearchAnswer = Schemas["SearchAnswer"];
/** One passage found, with its document's score and what a citation needs (page, headings). */
export type SearchHit = Schemas["SearchHitInfo"];
/** What an upload wrote and left out, per file and in total. */
export type UploadReport = Schemas["UploadReport"];
/** What one uploaded file gave. */
export type FileUploadReport = Schemas["FileUploadReport"];
/** Why part of a file was left out: file, line or page, and why. */
export type UploadProblem = Schemas["UploadProblem"];
/** A JSON object whose fields the service does not fix: a tool in an export format (each vendor's
 * own shape). */
export type JsonObject = Record<string, unknown>;

// Cache and monitoring
/** Exactly one of `key`, `pattern` or `tags`. */
export type Invalidation = Schemas["Invalidation"];
/** How many cache entries went. */
export type Invalidated = Schemas["Invalidated"];
/** Both cache tiers' counters and the hottest keys. */
export type CacheStats = Schemas["CacheStatsAnswer"];
/** One tier's counters. */
export type TierCounters = Schemas["TierCounters"];
/** Firing alerts and recent events. */
export type AlertListing = Schemas["AlertListing"];
/** One alert. */
export type Alert = Schemas["AlertInfo"];
/** Every endpoint's request figures (keyed by route template), caches, errors, the process,
 * alerts and the last health checks. */
export type MonitoringReport = Schemas["MonitoringReport"];
/** The profiler's names with their counts and percentiles. */
export type ProfilingReport = Schemas["ProfilingReport"];
/** Columns the profiling report sorts by. */
export type ProfilingSortKey = NonNullable<
  QueryOf<"profiling_report_v1_profiling_report_get">["sort_by"]
>;
/** The formats a deep trace is read back in. */
export type TraceFormat = NonNullable<
  QueryOf<"get_trace_v1_profiling_traces__trace_id__get">["format"]
>;

// Health
/** `GET /livez`. */
export type Liveness = Schemas["Liveness"];
/** `GET /readyz`: every check with its timing. */
export type Readiness = Schemas["Readiness"];
