/**
 * Retries on a real 429: the service lets a key have one run in flight
 * (`COMPANION_EXECUTE_MAX_CONCURRENT_PER_KEY=1` in the test service), so a second run while a
 * first one holds the slot is refused with `Retry-After: 1`.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { RateLimited, type StreamEvent } from "companion-client";

import { client } from "./service.js";

async function resultOf(stream: AsyncGenerator<StreamEvent>): Promise<string> {
  for await (const event of stream) {
    if (event.kind === "done") {
      return event.result.status;
    }
  }
  throw new Error("the stream ended without its result");
}

test("a 429 is retried after Retry-After, through the injected sleep", async () => {
  // The holding run prints, then sleeps until its wall time (3 s) stops it.
  const code = "import time\nprint('started', flush=True)\ntime.sleep(60)";
  const holder = client("retry").runStream(code, { limits: { wall_time_ms: 3000 } });
  const started = await holder.next();
  assert.deepEqual(started.value, { kind: "stdout", text: "started\n" });
  const held = resultOf(holder);

  await assert.rejects(
    client("retry", { maxRetries: 0 }).run("print('refused')"),
    (error: unknown) => {
      assert.ok(error instanceof RateLimited);
      assert.equal(error.status, 429);
      assert.equal(error.retryAfterS, 1);
      return true;
    },
  );

  // A wait longer than the call's timeout is not started: the 429 itself is thrown, at once.
  const cut: number[] = [];
  const short = client("retry", {
    maxRetries: 3,
    timeoutMs: 500,
    sleep: async (ms: number) => {
      cut.push(ms);
    },
  });
  await assert.rejects(short.run("print('too soon')"), (error: unknown) => {
    assert.ok(error instanceof RateLimited, String(error));
    assert.equal(error.retryAfterS, 1);
    return true;
  });
  assert.deepEqual(cut, []);

  const waits: number[] = [];
  const retrying = client("retry", {
    maxRetries: 3,
    // real-time: the retry waits for the holding run to end (its wall time), a real condition;
    // the service releases the key's slot before it sends that run's last event.
    sleep: async (ms: number) => {
      waits.push(ms);
      await held;
    },
  });
  const result = await retrying.run("print('after')");
  assert.equal(result.stdout, "after\n");
  assert.deepEqual(waits, [1000]);
  assert.equal(await held, "timeout");
});
