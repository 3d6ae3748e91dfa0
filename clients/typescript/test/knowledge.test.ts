/** Knowledge against the real service: collections, documents with paging, a multipart upload
 * and search with its mode, k and filter. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { BadRequest, Conflict, Forbidden, NotFound } from "companion-client";

import { client } from "./service.js";

const COLLECTION = "ts-notes";

test("collections: ensure, create, get, list, delete", async () => {
  const collections = client("knowledge").collections;
  const made = await collections.ensure("ts-scratch", "made by PUT");
  assert.equal(made.created, true);
  assert.equal(made.collection.name, "ts-scratch");
  assert.equal(made.collection.document_count, 0);
  const again = await collections.ensure("ts-scratch", "ignored");
  assert.equal(again.created, false);
  assert.equal(again.collection.description, "made by PUT");
  await assert.rejects(collections.create("ts-scratch"), Conflict);
  const listed = (await collections.list()).collections;
  assert.ok(listed.some((collection) => collection.name === "ts-scratch"));
  const read = await collections.get("ts-scratch");
  assert.equal(read.name, "ts-scratch");
  assert.deepEqual(read.embeddings, { pending: 0, embedded: 0 });
  await collections.delete("ts-scratch");
  await assert.rejects(collections.get("ts-scratch"), NotFound);
  await assert.rejects(client("reader").collections.create("ts-denied"), Forbidden);
});

test("documents are added, paged, read, searched and deleted", async () => {
  const collections = client("knowledge").collections;
  await collections.create(COLLECTION, "notes of the TypeScript tests");
  const ids = await collections.addDocuments(COLLECTION, [
    {
      id: "refunds",
      text: "Refunds are processed within five working days.",
      metadata: { team: "support" },
    },
    {
      id: "shipping",
      text: "Parcels ship from the warehouse every morning.",
      metadata: { team: "logistics" },
    },
    {
      id: "returns",
      text: "Returns need the original receipt for a refund.",
      metadata: { team: "support" },
    },
  ]);
  assert.deepEqual(ids.ids, ["refunds", "shipping", "returns"]);
  const single = await collections.addDocuments(COLLECTION, {
    id: "hours",
    text: "The desk opens at nine.",
  });
  assert.deepEqual(single.ids, ["hours"]);

  const page = await collections.listDocuments(COLLECTION, { limit: 2 });
  assert.equal(page.documents.length, 2);
  assert.ok(page.next_after);
  const everything: string[] = [];
  for await (const document of collections.documents(COLLECTION, 3)) {
    everything.push(document.id);
  }
  assert.deepEqual(everything, ["hours", "refunds", "returns", "shipping"]);
  const refunds = await collections.getDocument(COLLECTION, "refunds");
  assert.equal(refunds.text, "Refunds are processed within five working days.");
  assert.deepEqual(refunds.metadata, { team: "support" });

  const found = await collections.search(COLLECTION, "refund", { k: 5 });
  const hits = found.results;
  assert.deepEqual(
    hits.map((hit) => hit.document_id).sort(),
    ["refunds", "returns"],
    JSON.stringify(found),
  );
  assert.match(hits[0]!.snippet ?? "", /<mark>/);
  assert.equal(hits[0]!.page, null);
  assert.deepEqual(hits[0]!.headings, []);
  const filtered = await collections.search(COLLECTION, "refund OR parcels", {
    mode: "bm25",
    k: 1,
    filter: { team: "support" },
  });
  const [best, ...rest] = filtered.results;
  assert.equal(rest.length, 0);
  assert.equal(best?.metadata["team"], "support");
  await assert.rejects(
    collections.search(COLLECTION, "refund", { mode: "vector" }),
    (error: unknown) => {
      assert.ok(error instanceof BadRequest);
      assert.equal(error.status, 400);
      return true;
    },
  );

  await collections.deleteDocument(COLLECTION, "hours");
  await assert.rejects(collections.getDocument(COLLECTION, "hours"), NotFound);
  await collections.delete(COLLECTION);
});

test("files are uploaded as multipart, parsed and found by search", async () => {
  const collections = client("knowledge").collections;
  await collections.ensure("ts-uploads");
  const report = await collections.upload(
    "ts-uploads",
    [
      {
        name: "guide.md",
        content: "# Tiered cache\n\nThe L1 tier sits in front of Redis.",
        type: "text/markdown",
      },
      {
        name: "rows.csv",
        content: new TextEncoder().encode("city,note\nOslo,cold winters\nLima,mild fog\n"),
      },
      {
        name: "notes.txt",
        content: new Blob(["Zygotes fork sandboxes quickly."], { type: "text/plain" }),
      },
    ],
    { metadata: { source: "ts-test" } },
  );
  assert.equal(report.problems, 0, JSON.stringify(report));
  assert.deepEqual(
    report.files.map((file) => [file.file, file.format]),
    [
      ["guide.md", "markdown"],
      ["rows.csv", "csv"],
      ["notes.txt", "text"],
    ],
  );
  assert.ok(report.written >= 4, JSON.stringify(report));
  const found = await collections.search("ts-uploads", "Redis tier", {
    filter: { source: "ts-test" },
  });
  const [hit] = found.results;
  assert.equal(hit?.document_id, "guide.md", JSON.stringify(found));
  assert.deepEqual(hit?.headings, ["Tiered cache"]);
  await collections.delete("ts-uploads");
});
