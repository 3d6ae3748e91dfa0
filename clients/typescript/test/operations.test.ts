/** The cache and monitoring routes against the real service (admin key), and a deep trace read
 * back by the id its request was answered with. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Forbidden, NotFound, ValidationFailed } from "companion-client";

import { client } from "./service.js";

test("cache statistics and invalidation", async () => {
  const admin = client("admin");
  const stats = await admin.cache.stats();
  for (const figures of [stats.l1, stats.l2]) {
    assert.equal(typeof figures.hit_rate, "number", JSON.stringify(stats));
  }
  assert.ok(Array.isArray(stats.hot_keys));
  assert.deepEqual(await admin.cache.invalidate({ key: "user:42" }), { removed: 0 });
  assert.deepEqual(await admin.cache.invalidate({ tags: ["user:42"] }), { removed: 0 });
  await assert.rejects(admin.cache.invalidate({ key: "a", pattern: "b*" }), ValidationFailed);
  await assert.rejects(client("tools").cache.stats(), Forbidden);
});

test("monitoring report, alerts and the profiling report", async () => {
  const admin = client("admin");
  await admin.cache.stats(); // at least one admin route has been answered before the report
  const report = await admin.monitoring.report();
  const stats = report.endpoints["/v1/cache/stats"];
  assert.ok(stats && stats.count >= 1, Object.keys(report.endpoints).join());
  assert.equal(typeof report.system.rss_bytes, "number");
  const alerts = await admin.monitoring.alerts();
  assert.ok(Array.isArray(alerts.active) && Array.isArray(alerts.history), JSON.stringify(alerts));
  const profile = await admin.monitoring.profilingReport({ sortBy: "count", limit: 2 });
  assert.equal(profile.sort_by, "count");
  const rows = profile.stats;
  assert.equal(rows.length, 2, JSON.stringify(profile));
  assert.ok(rows[0]!.count >= rows[1]!.count);
  const table = await admin.monitoring.profilingReportText({ limit: 5 });
  assert.match(table, /http /);
  await assert.rejects(client("execute").monitoring.report(), Forbidden);
});

test("a request sent with X-Companion-Trace is read back as a call tree", async () => {
  const admin = client("admin");
  const traced = await admin.request("GET", "/v1/cache/stats", {
    headers: { "X-Companion-Trace": "1" },
  });
  const id = traced.headers.get("x-companion-trace-id");
  assert.ok(id, "the service did not trace the request");
  const tree = await admin.monitoring.trace(id);
  assert.ok(tree.length > 0);
  const speedscope = JSON.parse(await admin.monitoring.trace(id, "speedscope")) as Record<
    string,
    unknown
  >;
  assert.ok("profiles" in speedscope || "shared" in speedscope, Object.keys(speedscope).join());
  await assert.rejects(admin.monitoring.trace("no-such-trace"), NotFound);
});
