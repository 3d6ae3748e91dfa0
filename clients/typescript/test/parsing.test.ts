/** The pure parts: the SSE parser over awkwardly split chunks, `Retry-After` in both forms, and
 * the status-to-class table. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ApiError,
  BadRequest,
  Conflict,
  Gone,
  PayloadTooLarge,
  type Problem,
  RateLimited,
  ServerError,
  ServiceUnavailable,
  ValidationFailed,
  errorFromProblem,
  fromBase64,
  retryAfterSeconds,
  serverSentEvents,
  toBase64,
} from "companion-client";

async function* chunks(...parts: string[]): AsyncGenerator<string> {
  yield* parts;
}

async function collect(parts: string[]): Promise<[string, string][]> {
  const events: [string, string][] = [];
  for await (const { event, data } of serverSentEvents(chunks(...parts))) {
    events.push([event, data]);
  }
  return events;
}

test("SSE events survive chunks split anywhere, CRLF and comments", async () => {
  const stream =
    'event: stdout\ndata: {"text":"a"}\n\n: a comment\r\nevent: done\r\ndata: 1\r\ndata: 2\r\n\r\n';
  const expected: [string, string][] = [
    ["stdout", '{"text":"a"}'],
    ["done", "1\n2"],
  ];
  assert.deepEqual(await collect([stream]), expected);
  for (let cut = 1; cut < stream.length; cut += 1) {
    assert.deepEqual(
      await collect([stream.slice(0, cut), stream.slice(cut)]),
      expected,
      `cut at ${cut}`,
    );
  }
  assert.deepEqual(await collect(["data: last"]), [["message", "last"]]);
});

test("Retry-After in seconds or as an HTTP date", () => {
  assert.equal(retryAfterSeconds("3"), 3);
  assert.equal(retryAfterSeconds(null), null);
  assert.equal(retryAfterSeconds("soon"), null);
  const now = Date.parse("Wed, 21 Oct 2026 07:28:00 GMT");
  assert.equal(retryAfterSeconds("Wed, 21 Oct 2026 07:28:30 GMT", now), 30);
  assert.equal(retryAfterSeconds("Wed, 21 Oct 2026 07:27:00 GMT", now), 0);
});

test("each status has its class", () => {
  const problem = (status: number): Problem => ({
    type: "urn:companion:error:x",
    title: "X",
    status,
    detail: "d",
    instance: "/v1/x",
    code: "x",
  });
  assert.ok(errorFromProblem(problem(400)) instanceof BadRequest);
  assert.ok(errorFromProblem(problem(422)) instanceof ValidationFailed);
  assert.ok(errorFromProblem(problem(409)) instanceof Conflict);
  assert.ok(errorFromProblem(problem(410)) instanceof Gone);
  assert.ok(errorFromProblem(problem(413)) instanceof PayloadTooLarge);
  const limited = errorFromProblem(problem(429), 2);
  assert.ok(limited instanceof RateLimited && limited.retryAfterS === 2);
  assert.ok(errorFromProblem(problem(503)) instanceof ServiceUnavailable);
  assert.ok(errorFromProblem(problem(500)) instanceof ServerError);
  assert.ok(errorFromProblem(problem(502)) instanceof ServerError);
  const other = errorFromProblem(problem(415));
  assert.ok(other instanceof ApiError && !(other instanceof BadRequest));
});

test("base64 round trip of every byte value", () => {
  const bytes = Uint8Array.from({ length: 70_000 }, (_, index) => index % 256);
  assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  assert.equal(toBase64(new TextEncoder().encode("hi")), "aGk=");
});
