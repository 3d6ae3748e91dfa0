/** Tools against the real service: list, get, invoke, batch, exports, and refusals as errors. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Forbidden, NotFound, ValidationFailed } from "companion-client";

import { client } from "./service.js";

test("tools are listed with their schemas, and one is read by name", async () => {
  const tools = client("tools").tools;
  const listed = await tools.list();
  const names = listed.map((tool) => tool.name);
  assert.ok(names.includes("add") && names.includes("divide"), names.join());
  // `run_code` acts through `execute`, which this key lacks: it is left out.
  assert.ok(!names.includes("run_code"));
  const math = await tools.list({ category: "math" });
  assert.ok(math.length > 0 && math.every((tool) => tool.category === "math"));
  const add = await tools.get("add");
  assert.equal(add.name, "add");
  assert.deepEqual(Object.keys(add.input_schema["properties"] as object).sort(), ["a", "b"]);
  assert.equal(add.pure, true);
});

test("invoke returns the value, or a tool's own failure as ok: false", async () => {
  const tools = client("tools").tools;
  const sum = await tools.invoke("add", { a: 5, b: 3 });
  assert.equal(sum.ok, true);
  assert.equal(sum.value, 8);
  assert.equal(sum.tool, "add");
  const zero = await tools.invoke("divide", { a: 1, b: 0 }, { timeoutS: 5 });
  assert.equal(zero.ok, false);
  assert.equal(zero.error?.code, "division_by_zero");
});

test("refused calls are thrown as their classes", async () => {
  const tools = client("tools").tools;
  await assert.rejects(tools.invoke("add", { a: "five", b: 3 }), (error: unknown) => {
    assert.ok(error instanceof ValidationFailed);
    assert.ok(
      error.errors.some((field) => field.pointer.includes("a")),
      JSON.stringify(error.errors),
    );
    return true;
  });
  await assert.rejects(tools.invoke("no_such_tool"), (error: unknown) => {
    assert.ok(error instanceof NotFound);
    assert.equal(error.code, "tool_not_found");
    return true;
  });
  await assert.rejects(tools.invoke("run_code", { code: "print(1)" }), (error: unknown) => {
    assert.ok(error instanceof Forbidden);
    assert.equal(error.code, "scope_missing");
    return true;
  });
});

test("a batch answers every call in order, each with its own outcome", async () => {
  const batch = await client("tools").tools.batch(
    [
      { tool: "add", arguments: { a: 1, b: 2 }, id: "one" },
      { tool: "divide", arguments: { a: 1, b: 0 }, id: "two" },
      { tool: "no_such_tool", id: "three" },
    ],
    { maxConcurrency: 2 },
  );
  assert.deepEqual(
    batch.results.map((result) => [result.id, result.ok]),
    [
      ["one", true],
      ["two", false],
      ["three", false],
    ],
  );
  assert.equal(batch.results[0]?.value, 3);
  assert.equal(batch.results[1]?.error?.code, "division_by_zero");
  assert.equal(batch.results[2]?.error?.code, "tool_not_found");
});

test("tools export for OpenAI (chat and responses), Anthropic and MCP", async () => {
  const tools = client("tools").tools;
  const byName = (
    items: Record<string, unknown>[],
    name: (item: Record<string, unknown>) => unknown,
  ) => items.find((item) => name(item) === "add");
  const chat = byName(
    await tools.export("openai"),
    (t) => (t["function"] as { name: string }).name,
  );
  assert.equal(chat?.["type"], "function");
  assert.equal((chat?.["function"] as { strict: boolean }).strict, true);
  const responses = byName(await tools.export("openai", { api: "responses" }), (t) => t["name"]);
  assert.equal(responses?.["type"], "function");
  const anthropic = byName(await tools.export("anthropic", { category: "math" }), (t) => t["name"]);
  assert.ok(anthropic?.["input_schema"]);
  const mcp = byName(await tools.export("mcp"), (t) => t["name"]);
  assert.ok(mcp?.["inputSchema"]);
  await assert.rejects(tools.export("anthropic", { api: "chat" }), ValidationFailed);
});
