/**
 * The optimisation layer: the tiered cache (statistics, invalidation) and monitoring (the report
 * per endpoint, alerts, the profiler's report and deep traces). Everything but `invalidate`
 * needs an admin key.
 */

import { type RequestOptions, type Transport, segment } from "./transport.js";
import type {
  AlertListing,
  CacheStats,
  MonitoringReport,
  ProfilingReport,
  Invalidated,
  Invalidation,
  ProfilingSortKey,
  TraceFormat,
} from "./types.js";

/** `client.cache`. */
export class Cache {
  private readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  /** Per-tier size, hits, misses, hit rate and promotions since start, and the hottest keys. */
  async stats(options: RequestOptions = {}): Promise<CacheStats> {
    const call = { method: "GET", path: "/v1/cache/stats" } as const;
    return (await this.transport.json<CacheStats>(call, options)).data;
  }

  /** Drop this tenant's entries by one of `key`, glob `pattern` or `tags`, on every tier. */
  async invalidate(what: Invalidation, options: RequestOptions = {}): Promise<Invalidated> {
    const call = { method: "POST", path: "/v1/cache/invalidate", json: what } as const;
    return (await this.transport.json<Invalidated>(call, options)).data;
  }
}

/** Options of `profilingReport`. */
export interface ProfilingReportOptions extends RequestOptions {
  /** The column to sort by, descending (default `total_s`). */
  sortBy?: ProfilingSortKey | undefined;
  /** Rows kept (default 50). */
  limit?: number | undefined;
}

/** `client.monitoring`. */
export class Monitoring {
  private readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  /** Every endpoint's request statistics (count, percentiles, error rate), caches and alerts. */
  async report(options: RequestOptions = {}): Promise<MonitoringReport> {
    const call = { method: "GET", path: "/v1/monitoring/report" } as const;
    return (await this.transport.json<MonitoringReport>(call, options)).data;
  }

  /** Firing alerts (`active`) and recent `history`. */
  async alerts(options: RequestOptions = {}): Promise<AlertListing> {
    const call = { method: "GET", path: "/v1/alerts" } as const;
    return (await this.transport.json<AlertListing>(call, options)).data;
  }

  /** Profiled names (every route is `http <route>`) with count, total and percentiles. */
  async profilingReport(options: ProfilingReportOptions = {}): Promise<ProfilingReport> {
    const query = { sort_by: options.sortBy, limit: options.limit, format: "json" };
    const call = { method: "GET", path: "/v1/profiling/report", query } as const;
    return (await this.transport.json<ProfilingReport>(call, options)).data;
  }

  /** The same report as a text table. */
  async profilingReportText(options: ProfilingReportOptions = {}): Promise<string> {
    const query = { sort_by: options.sortBy, limit: options.limit, format: "text" };
    return (
      await this.transport.text({ method: "GET", path: "/v1/profiling/report", query }, options)
    ).data;
  }

  /**
   * The call tree of one deep-traced request: text (default), a self-contained HTML page, or
   * speedscope JSON (as text). A request is traced when an admin key sends it with
   * `X-Companion-Trace: 1` and the service allows it (`COMPANION_PROFILING_TRACE_REQUESTS`);
   * its answer names the trace in `X-Companion-Trace-Id` (see `client.request`).
   */
  async trace(
    id: string,
    format: TraceFormat = "text",
    options: RequestOptions = {},
  ): Promise<string> {
    const call = {
      method: "GET",
      path: `/v1/profiling/traces/${segment(id)}`,
      query: { format },
    } as const;
    return (await this.transport.text(call, options)).data;
  }
}
