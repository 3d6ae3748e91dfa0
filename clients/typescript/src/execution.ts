/**
 * Code execution helpers: files to send, the events of a streamed run (Server-Sent Events read
 * from `fetch`'s body), and the conveniences over a result (its last value, its images, the bytes
 * of what it returned). Paths of returned files come from the sandbox, where a snippet chose
 * them: check them before writing anything to disk.
 */

import { CompanionError, errorFromProblem, problemOf } from "./errors.js";
import type { OpenResponse } from "./transport.js";
import type { CellResult, ExecutionResult, OutputFile, RichResult, SourceFile } from "./types.js";

/** Files for a run or a workspace: `{name: text or bytes}`, or the service's own file objects. */
export type InputFiles = Record<string, string | Uint8Array> | readonly SourceFile[];

/** One event of a streamed run or cell: `stdout`/`stderr` text and `result`s as the run produces
 * them, in order, then `done` with the whole result, always last. */
export type StreamEvent<Result = ExecutionResult> =
  | { kind: "stdout" | "stderr"; text: string }
  | { kind: "result"; result: RichResult }
  | { kind: "done"; result: Result };

/** The result of a run or of a session's cell. */
export type AnyResult = ExecutionResult | CellResult;

// btoa/atob take "binary strings"; spreading more than ~64k arguments overflows the stack.
const CHUNK = 0x8000;

/** Bytes as base64. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let start = 0; start < bytes.length; start += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(start, start + CHUNK));
  }
  return btoa(binary);
}

/** Base64 as bytes. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) {
    bytes[index] = binary.charCodeAt(index);
  }
  return bytes;
}

/** The request's `files` from `{name: text or bytes}` (bytes go as base64: they arrive exact). */
export function inputFiles(files: InputFiles): SourceFile[] {
  if (Array.isArray(files)) {
    return [...(files as readonly SourceFile[])];
  }
  return Object.entries(files as Record<string, string | Uint8Array>).map(([name, content]) =>
    typeof content === "string"
      ? { name, content, encoding: "utf-8" as const }
      : { name, content: toBase64(content), encoding: "base64" as const },
  );
}

/** The last expression's value as text, or null when the run had none. */
export function lastValue(result: AnyResult): string | null {
  const value = (result.results ?? []).find(
    (item) => item.kind === "value" && item.mime_type === "text/plain",
  );
  return value?.data ?? null;
}

/** Every image among the results: figures, and values shown as images. */
export function images(result: AnyResult): RichResult[] {
  return (result.results ?? []).filter((item) => item.mime_type.startsWith("image/"));
}

/** The bytes of a returned file, or of a result's representation (an image decoded from base64). */
export function bytesOf(item: OutputFile | RichResult): Uint8Array {
  if ("content_base64" in item) {
    return fromBase64(item.content_base64);
  }
  return item.encoding === "base64" ? fromBase64(item.data) : new TextEncoder().encode(item.data);
}

/** A returned file by its path, or undefined. */
export function returnedFile(result: AnyResult, path: string): OutputFile | undefined {
  return (result.files ?? []).find((file) => file.path === path);
}

/** A server-sent event: its name (`message` when unnamed) and its data lines joined. */
export interface ServerSentEvent {
  event: string;
  data: string;
}

/**
 * The events of an SSE stream given as text chunks, per the WHATWG rules this service needs:
 * `event:` and `data:` fields, data lines joined by newlines, a blank line dispatches, a line
 * starting with `:` is a comment; lines end with LF, CRLF or CR.
 */
export async function* serverSentEvents(
  chunks: AsyncIterable<string>,
): AsyncGenerator<ServerSentEvent> {
  let buffer = "";
  let event = "message";
  let data: string[] = [];
  const dispatch = function* (line: string): Generator<ServerSentEvent> {
    if (line === "") {
      if (data.length > 0) {
        yield { event, data: data.join("\n") };
      }
      event = "message";
      data = [];
      return;
    }
    if (line.startsWith(":")) {
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "event") {
      event = value;
    } else if (field === "data") {
      data.push(value);
    }
  };
  for await (const chunk of chunks) {
    buffer += chunk;
    let match: RegExpExecArray | null;
    // A CR at the very end may be the first half of a CRLF: it waits for the next chunk.
    const lineEnd = /\r\n|\n|\r(?!$)/g;
    let consumed = 0;
    while ((match = lineEnd.exec(buffer)) !== null) {
      yield* dispatch(buffer.slice(consumed, match.index));
      consumed = match.index + match[0].length;
    }
    buffer = buffer.slice(consumed);
  }
  if (buffer !== "") {
    yield* dispatch(buffer.replace(/\r$/, ""));
  }
  yield* dispatch("");
}

async function* textChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        yield decoder.decode();
        return;
      }
      yield decoder.decode(value, { stream: true });
    }
  } finally {
    // Leaving early (a `break` in the caller's loop) closes the connection: the service sees
    // the client go and stops the run.
    await reader.cancel().catch(() => undefined);
  }
}

function eventData(event: string, data: string, path: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new CompanionError(
      `${path}: the stream's ${event} event is not JSON: ${data.slice(0, 200)}`,
    );
  }
}

/**
 * The `StreamEvent`s of an open streamed run; an `error` event throws its problem as the
 * matching `ApiError`, and a stream that ends before `done` throws `CompanionError`.
 */
export async function* streamEvents<Result>(
  opened: OpenResponse,
  path: string,
): AsyncGenerator<StreamEvent<Result>, void, undefined> {
  const body = opened.response.body;
  if (body === null) {
    throw new CompanionError(`${path}: the answer has no body to stream`);
  }
  try {
    for await (const { event, data } of serverSentEvents(textChunks(body))) {
      if (event === "error") {
        throw errorFromProblem(problemOf(500, "Internal error", data, path));
      }
      const parsed = eventData(event, data, path);
      if (event === "done") {
        yield { kind: "done", result: parsed as Result };
        return;
      }
      if (event === "result") {
        yield { kind: "result", result: parsed as RichResult };
      } else if (event === "stdout" || event === "stderr") {
        yield { kind: event, text: String((parsed as { text?: unknown }).text ?? "") };
      }
    }
  } catch (error) {
    throw opened.failure(error);
  }
  throw new CompanionError(`${path}: the stream ended before the run's result`);
}
