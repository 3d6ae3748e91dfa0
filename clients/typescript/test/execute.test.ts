/** Code execution against the real service: files in and out, rich results, streaming,
 * cancellation, timeouts and errors mapped to their classes. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ApiError,
  BadRequest,
  Client,
  CompanionError,
  ConnectionFailed,
  Forbidden,
  type StreamEvent,
  Timeout,
  Unauthorized,
  ValidationFailed,
  bytesOf,
  images,
  lastValue,
  returnedFile,
} from "companion-client";

import { baseUrl, client } from "./service.js";

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

test("a run takes files in (text, bytes), returns its value and the files it wrote", async () => {
  const code = [
    "rows = [int(x) for x in open('numbers.txt').read().split()]",
    "raw = open('blob.bin', 'rb').read()",
    "open('doubled.txt', 'w').write(' '.join(str(2 * r) for r in rows))",
    "sum(rows) + sum(raw)",
  ].join("\n");
  const result = await client("execute").run(code, {
    files: { "numbers.txt": "1 2 3", "blob.bin": new Uint8Array([0, 255, 10]) },
  });
  assert.equal(result.status, "ok", result.stderr);
  assert.equal(lastValue(result), String(6 + 0 + 255 + 10));
  const doubled = returnedFile(result, "doubled.txt");
  assert.ok(doubled, JSON.stringify(result.files));
  assert.equal(doubled.mime_type, "text/plain");
  assert.equal(text(bytesOf(doubled)), "2 4 6");
  assert.equal(result.language, "python");
});

test("a matplotlib figure comes back as a PNG image", async () => {
  const result = await client("execute").run(
    "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])",
  );
  assert.equal(result.status, "ok", result.stderr);
  const [figure] = images(result);
  assert.ok(figure, JSON.stringify(result.results));
  assert.equal(figure.kind, "figure");
  assert.deepEqual([...bytesOf(figure).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
});

test("JavaScript runs, and a user's exception is a result, not an error", async () => {
  const execute = client("execute");
  const js = await execute.run("console.log([1, 2].map((x) => x * 3))", { language: "javascript" });
  assert.equal(js.stdout, "[3,6]\n");
  const failed = await execute.run("1 / 0");
  assert.equal(failed.status, "runtime_error");
  assert.equal(failed.error?.name, "ZeroDivisionError");
});

test("a streamed run gives output and results as they come, then the whole result", async () => {
  const code = [
    "import sys",
    "for i in range(3):",
    "    print(f'line {i}', flush=True)",
    "print('oops', file=sys.stderr, flush=True)",
    "open('out.txt', 'w').write('streamed')",
    "6 * 7",
  ].join("\n");
  const events: StreamEvent[] = [];
  for await (const event of client("execute").runStream(code)) {
    events.push(event);
  }
  const last = events.at(-1);
  assert.ok(last?.kind === "done", JSON.stringify(events));
  const stdout = events.flatMap((e) => (e.kind === "stdout" ? [e.text] : [])).join("");
  const stderr = events.flatMap((e) => (e.kind === "stderr" ? [e.text] : [])).join("");
  assert.equal(stdout, "line 0\nline 1\nline 2\n");
  assert.equal(stderr, "oops\n");
  const value = events.find((e) => e.kind === "result");
  assert.ok(value?.kind === "result" && value.result.data === "42", JSON.stringify(events));
  assert.ok(events.indexOf(value) < events.length - 1);
  assert.equal(last.result.stdout, stdout);
  const out = returnedFile(last.result, "out.txt");
  assert.ok(out);
  assert.equal(text(bytesOf(out)), "streamed");
});

test("aborting a streamed run rejects with the signal's reason", async () => {
  const controller = new AbortController();
  const code = "import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.1)";
  const seen: StreamEvent[] = [];
  await assert.rejects(
    async () => {
      for await (const event of client("abort").runStream(code, { signal: controller.signal })) {
        seen.push(event);
        controller.abort();
      }
    },
    (error: unknown) => error === controller.signal.reason,
  );
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.kind, "stdout");
});

test("a call over its timeout rejects with Timeout", async () => {
  const slow = client("timeout", { timeoutMs: 300 });
  await assert.rejects(slow.run("import time\ntime.sleep(3)"), (error: unknown) => {
    assert.ok(error instanceof Timeout);
    assert.ok(error instanceof CompanionError);
    assert.match(error.message, /300 ms/);
    return true;
  });
});

test("problem documents become the error classes", async () => {
  await assert.rejects(client("execute").run("x", { language: "cobol" }), (error: unknown) => {
    assert.ok(error instanceof ValidationFailed);
    assert.ok(error instanceof BadRequest && error instanceof ApiError);
    assert.equal(error.status, 422);
    assert.equal(error.code, "unknown_language");
    assert.equal(error.type, "urn:companion:error:unknown_language");
    assert.equal(error.errors[0]?.pointer, "/language");
    assert.equal(error.problem.instance, "/v1/execute");
    assert.ok(error.requestId);
    return true;
  });
  await assert.rejects(client("tools").run("print(1)"), Forbidden);
  const stranger = new Client({ baseUrl, apiKey: `cmp_0123456789ab_${"0".repeat(48)}` });
  await assert.rejects(stranger.run("print(1)"), Unauthorized);
  await assert.rejects(client("execute").request("GET", "/v1/nowhere"), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 404);
    return true;
  });
});

test("no service at the address rejects with ConnectionFailed", async () => {
  // Port 9 (discard) listens nowhere on the test machines.
  const nowhere = new Client({ baseUrl: "http://127.0.0.1:9", maxRetries: 0 });
  await assert.rejects(nowhere.live(), ConnectionFailed);
});

test("runtimes, liveness and readiness", async () => {
  const execute = client("execute");
  const runtimes = await execute.runtimes();
  const languages = runtimes.runtimes.map((runtime) => runtime.language);
  assert.ok(languages.includes("python") && languages.includes("javascript"), languages.join());
  assert.ok(runtimes.isolation.length > 0);
  assert.deepEqual(await execute.live(), { status: "ok" });
  assert.equal((await execute.ready()).status, "ready");
});
