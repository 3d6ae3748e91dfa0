/**
 * Knowledge: collections, their documents (added as JSON or uploaded as files to be parsed), and
 * search by BM25, vectors or both. Everything stays within the key's tenant.
 */

import { type RequestOptions, type Transport, segment, splitOptions } from "./transport.js";
import type {
  Collection,
  CollectionDetail,
  CollectionListing,
  DocumentIds,
  DocumentIn,
  DocumentPage,
  SearchAnswer,
  SearchRequest,
  StoredDocument,
  UploadReport,
} from "./types.js";

/** A file to upload: its name, its content, and optionally its media type. */
export interface UploadFile {
  name: string;
  content: string | Uint8Array | Blob;
  type?: string | undefined;
}

/** Options of `upload`. */
export interface UploadOptions extends RequestOptions {
  /** A JSON object added to the metadata of every document the files make. */
  metadata?: Record<string, unknown> | undefined;
}

/** Options of `search` besides the query (`mode` bm25, `k` 10 and snippets by default). */
export type SearchOptions = Partial<Omit<SearchRequest, "query">> & RequestOptions;

/** What `ensure` found or made. */
export interface Ensured {
  collection: Collection;
  /** True when this call created the collection. */
  created: boolean;
}

function blobOf(file: UploadFile): Blob {
  if (file.content instanceof Blob) {
    return file.content;
  }
  // Bytes are copied to a plain `ArrayBuffer`: `BlobPart` excludes views of shared memory.
  const part = typeof file.content === "string" ? file.content : new Uint8Array(file.content);
  return new Blob([part], { type: file.type ?? "application/octet-stream" });
}

/** `client.collections`: collections, their documents, uploads and search. */
export class Collections {
  private readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  /** Every collection of the tenant, by name (`{collections: [...]}`). */
  async list(options: RequestOptions = {}): Promise<CollectionListing> {
    const call = { method: "GET", path: "/v1/collections" } as const;
    return (await this.transport.json<CollectionListing>(call, options)).data;
  }

  /** Create a collection (`Conflict` when the name is taken). */
  async create(name: string, description = "", options: RequestOptions = {}): Promise<Collection> {
    const call = { method: "POST", path: "/v1/collections", json: { name, description } } as const;
    return (await this.transport.json<Collection>(call, options)).data;
  }

  /** Get or create a collection: idempotent (an existing one keeps its description). */
  async ensure(name: string, description = "", options: RequestOptions = {}): Promise<Ensured> {
    const call = { method: "PUT", path: this.path(name), json: { description } } as const;
    const answer = await this.transport.json<Collection>(call, options);
    return { collection: answer.data, created: answer.status === 201 };
  }

  /** A collection with its document and chunk counts and its embedding progress. */
  async get(name: string, options: RequestOptions = {}): Promise<CollectionDetail> {
    const call = { method: "GET", path: this.path(name) } as const;
    return (await this.transport.json<CollectionDetail>(call, options)).data;
  }

  /** Delete a collection and all its documents. */
  async delete(name: string, options: RequestOptions = {}): Promise<void> {
    await this.transport.json<undefined>({ method: "DELETE", path: this.path(name) }, options);
  }

  /** Add or replace documents (one, or several in one transaction); their ids in order. */
  async addDocuments(
    collection: string,
    documents: DocumentIn | readonly DocumentIn[],
    options: RequestOptions = {},
  ): Promise<DocumentIds> {
    const json = Array.isArray(documents) ? { documents } : documents;
    const call = { method: "POST", path: `${this.path(collection)}/documents`, json } as const;
    return (await this.transport.json<DocumentIds>(call, options)).data;
  }

  /** One page of documents ordered by id: pass the page's `next_after` as `after` for the next. */
  async listDocuments(
    collection: string,
    page: { limit?: number | undefined; after?: string | null | undefined } = {},
    options: RequestOptions = {},
  ): Promise<DocumentPage> {
    const query = { limit: page.limit, after: page.after };
    const call = { method: "GET", path: `${this.path(collection)}/documents`, query } as const;
    return (await this.transport.json<DocumentPage>(call, options)).data;
  }

  /** Every document of a collection, fetching `pageSize` at a time. */
  async *documents(
    collection: string,
    pageSize = 100,
    options: RequestOptions = {},
  ): AsyncGenerator<StoredDocument, void, undefined> {
    let after: string | null = null;
    do {
      const page: DocumentPage = await this.listDocuments(
        collection,
        { limit: pageSize, after },
        options,
      );
      yield* page.documents;
      after = page.next_after;
    } while (after !== null);
  }

  /** One stored document. */
  async getDocument(
    collection: string,
    id: string,
    options: RequestOptions = {},
  ): Promise<StoredDocument> {
    const call = {
      method: "GET",
      path: `${this.path(collection)}/documents/${segment(id)}`,
    } as const;
    return (await this.transport.json<StoredDocument>(call, options)).data;
  }

  /** Delete a document and its chunks. */
  async deleteDocument(
    collection: string,
    id: string,
    options: RequestOptions = {},
  ): Promise<void> {
    const call = {
      method: "DELETE",
      path: `${this.path(collection)}/documents/${segment(id)}`,
    } as const;
    await this.transport.json<undefined>(call, options);
  }

  /**
   * Upload files (PDF, DOCX, HTML, Markdown, text, CSV, JSON lines) as `multipart/form-data`: the
   * service parses, chunks and indexes them. The answer reports each file's documents and
   * problems (a file that cannot be read is reported there, not thrown), with totals.
   */
  async upload(
    collection: string,
    files: readonly UploadFile[],
    options: UploadOptions = {},
  ): Promise<UploadReport> {
    const [{ metadata }, request] = splitOptions(options);
    const form = new FormData();
    for (const file of files) {
      form.append("files", blobOf(file), file.name);
    }
    if (metadata !== undefined) {
      form.append("metadata", JSON.stringify(metadata));
    }
    // No Content-Type here: fetch writes the multipart boundary into it.
    const call = { method: "POST", path: `${this.path(collection)}/files`, body: form } as const;
    return (await this.transport.json<UploadReport>(call, request)).data;
  }

  /** Search a collection: passages in document order, each with its document, score, snippet,
   * page and headings (`BadRequest` for an empty query, a bad filter, or vectors without an
   * embedder). */
  async search(
    collection: string,
    query: string,
    options: SearchOptions = {},
  ): Promise<SearchAnswer> {
    const [fields, request] = splitOptions(options);
    const call = {
      method: "POST",
      path: `${this.path(collection)}/search`,
      json: { ...fields, query },
    } as const;
    return (await this.transport.json<SearchAnswer>(call, request)).data;
  }

  private path(collection: string): string {
    return `/v1/collections/${segment(collection)}`;
  }
}
