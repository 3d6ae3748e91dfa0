/** Sessions against the real service: state kept between cells, workspace files, a streamed
 * cell, listing, attaching and ending. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFound, type StreamEvent, lastValue } from "companion-client";

import { client } from "./service.js";

test("a session keeps its state, its files, and ends", async () => {
  const sessions = client("execute").sessions;
  const session = await sessions.create({ language: "python", idle_timeout_s: 120 });
  assert.equal(session.info.state, "idle");
  assert.equal(session.info.idle_timeout_s, 120);

  const first = await session.run("x = 41");
  assert.equal(first.status, "ok");
  assert.equal(first.execution_count, 1);
  const second = await session.run("x + 1");
  assert.equal(lastValue(second), "42");
  assert.equal(second.execution_count, 2);
  assert.equal(second.session_id, session.id);

  await session.writeFiles({ "notes.txt": "hello", "raw.bin": new Uint8Array([1, 2, 3]) });
  await session.putFile("data/numbers.txt", "4 5 6");
  const listing = await session.files();
  assert.deepEqual(
    listing.files.map((file) => file.path),
    ["data/numbers.txt", "notes.txt", "raw.bin"],
  );
  assert.deepEqual([...(await session.readFile("raw.bin"))], [1, 2, 3]);
  const summed = await session.run("sum(int(v) for v in open('data/numbers.txt').read().split())");
  assert.equal(lastValue(summed), "15");
  await session.deleteFile("notes.txt");
  await assert.rejects(session.readFile("notes.txt"), NotFound);

  const events: StreamEvent<unknown>[] = [];
  for await (const event of session.runStream("for i in range(2):\n    print(x + i, flush=True)")) {
    events.push(event);
  }
  const stdout = events.flatMap((e) => (e.kind === "stdout" ? [e.text] : [])).join("");
  assert.equal(stdout, "41\n42\n");
  assert.equal(events.at(-1)?.kind, "done");

  const listed = await sessions.list();
  assert.ok(listed.sessions.some((info) => info.id === session.id));
  const attached = await sessions.attach(session.id);
  assert.equal(attached.info.execution_count, 4);
  assert.equal((await session.refresh()).execution_count, 4);

  await session.end();
  // An ended session is forgotten: its id is unknown from then on.
  await assert.rejects(session.run("x"), (error: unknown) => {
    assert.ok(error instanceof NotFound);
    assert.equal(error.code, "session_not_found");
    return true;
  });
  assert.ok(!(await sessions.list()).sessions.some((info) => info.id === session.id));
  await assert.rejects(sessions.get("no-such-session"), (error: unknown) => {
    assert.ok(error instanceof NotFound);
    assert.equal(error.code, "session_not_found");
    return true;
  });
});
