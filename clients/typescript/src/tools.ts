/**
 * Tools: list the registry, read one tool's schemas, call one or a batch in parallel, and export
 * the tools for OpenAI, Anthropic or MCP. A tool's own failure (a division by zero) is a result
 * with `ok: false`; a call the service refuses (unknown tool, bad arguments, a missing scope) is
 * thrown as `NotFound`, `ValidationFailed` or `Forbidden`.
 */

import { type RequestOptions, type Transport, segment } from "./transport.js";
import type {
  BatchCall,
  BatchResult,
  JsonObject,
  ToolFormat,
  ToolResult,
  ToolSummary,
} from "./types.js";

/** Options of `export`. */
export interface ExportOptions extends RequestOptions {
  /** With `openai`: Chat Completions (`chat`, the default) or the Responses API (`responses`). */
  api?: "chat" | "responses" | undefined;
  /** Only the tools of this category. */
  category?: string | undefined;
}

/** Options of `invoke`. */
export interface InvokeOptions extends RequestOptions {
  /** Lower the tool's timeout for this call, in seconds. */
  timeoutS?: number | undefined;
}

/** Options of `batch`. */
export interface BatchOptions extends RequestOptions {
  /** Calls running at the same time (the service bounds it too). */
  maxConcurrency?: number | undefined;
  /** Timeout of each call, in seconds. */
  timeoutS?: number | undefined;
}

/** `client.tools`. */
export class Tools {
  private readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  /** The tools this key may call, with their schemas (a tool acting through a scope the key
   * lacks, such as `run_code` without `execute`, is left out). */
  async list(
    options: RequestOptions & { category?: string | undefined } = {},
  ): Promise<ToolSummary[]> {
    const call = {
      method: "GET",
      path: "/v1/tools",
      query: { category: options.category },
    } as const;
    // The route answers `format=companion` with `ToolSummary`s; its OpenAPI type is the
    // union of every format's objects.
    return (await this.transport.json<ToolSummary[]>(call, options)).data;
  }

  /** The tools as another API declares them: `openai` (strict function tools), `anthropic` or
   * `mcp`. */
  async export(
    format: Exclude<ToolFormat, "companion">,
    options: ExportOptions = {},
  ): Promise<JsonObject[]> {
    const query = { format, api: options.api, category: options.category };
    return (
      await this.transport.json<JsonObject[]>({ method: "GET", path: "/v1/tools", query }, options)
    ).data;
  }

  /** One tool with its schemas (`NotFound` when it does not exist or is disabled). */
  async get(name: string, options: RequestOptions = {}): Promise<ToolSummary> {
    const call = { method: "GET", path: `/v1/tools/${segment(name)}` } as const;
    return (await this.transport.json<ToolSummary>(call, options)).data;
  }

  /** Call one tool with its arguments. */
  async invoke(
    name: string,
    args: Record<string, unknown> = {},
    options: InvokeOptions = {},
  ): Promise<ToolResult> {
    const json = { arguments: args, timeout_s: options.timeoutS };
    const call = { method: "POST", path: `/v1/tools/${segment(name)}/invoke`, json } as const;
    return (await this.transport.json<ToolResult>(call, options)).data;
  }

  /** Call several tools in parallel; each call has its own result, in the order sent (an unknown
   * tool or bad arguments are that call's error, not the batch's). */
  async batch(calls: readonly BatchCall[], options: BatchOptions = {}): Promise<BatchResult> {
    const json = { calls, max_concurrency: options.maxConcurrency, timeout_s: options.timeoutS };
    return (
      await this.transport.json<BatchResult>(
        { method: "POST", path: "/v1/tools/batch", json },
        options,
      )
    ).data;
  }
}
