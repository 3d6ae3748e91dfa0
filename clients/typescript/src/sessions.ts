/**
 * Sessions: an interpreter that keeps its variables, imports and files between cells, in a
 * sandbox of its own. `client.sessions.create()` opens one and returns a `Session` handle.
 */

import { type InputFiles, type StreamEvent, inputFiles, streamEvents } from "./execution.js";
import {
  type RequestOptions,
  type Transport,
  filePath,
  segment,
  splitOptions,
} from "./transport.js";
import type {
  CellRequest,
  CellResult,
  SessionCreate,
  SessionInfo,
  SessionList,
  WorkspaceListing,
} from "./types.js";

/** A cell's fields besides `code` (files as `{name: text or bytes}` too), and call options. */
export type CellOptions = Omit<CellRequest, "code" | "files"> & {
  files?: InputFiles | undefined;
} & RequestOptions;

/** What `create` takes: the session's language, limits and idle timeout, and the call's options. */
export type SessionOptions = SessionCreate & RequestOptions;

function cellCall(code: string, options: CellOptions): [CellRequest, RequestOptions] {
  const [{ files, ...fields }, request] = splitOptions(options);
  const body =
    files === undefined ? { ...fields, code } : { ...fields, code, files: inputFiles(files) };
  return [body, request];
}

/** One open session of the caller's. */
export class Session {
  /** The session's id. */
  readonly id: string;
  /** The session as last seen (`refresh` reads it again). */
  info: SessionInfo;
  private readonly transport: Transport;
  private readonly path: string;

  constructor(transport: Transport, info: SessionInfo) {
    this.transport = transport;
    this.info = info;
    this.id = info.id;
    this.path = `/v1/sessions/${segment(info.id)}`;
  }

  /** Run one cell; user errors are in the result (`status`, `error`), not thrown. A session that
   * ended before the cell throws `Gone`. */
  async run(code: string, options: CellOptions = {}): Promise<CellResult> {
    return this.execute(...cellCall(code, options));
  }

  /** `POST /v1/sessions/{id}/execute` with a body as the service takes it. */
  async execute(request: CellRequest, options: RequestOptions = {}): Promise<CellResult> {
    const call = { method: "POST", path: `${this.path}/execute`, json: request } as const;
    return (await this.transport.json<CellResult>(call, options)).data;
  }

  /** `run`, streamed: output and results as the cell produces them, then `done`. Leaving the
   * loop early (or aborting the signal) interrupts the cell; the session goes on. */
  async *runStream(
    code: string,
    options: CellOptions = {},
  ): AsyncGenerator<StreamEvent<CellResult>, void, undefined> {
    const path = `${this.path}/execute`;
    const [body, request] = cellCall(code, options);
    const call = { method: "POST", path, json: body, accept: "text/event-stream" } as const;
    yield* streamEvents<CellResult>(await this.transport.open(call, request), path);
  }

  /** Read the session again (its state, `execution_count`, `ended_reason`). */
  async refresh(options: RequestOptions = {}): Promise<SessionInfo> {
    this.info = (
      await this.transport.json<SessionInfo>({ method: "GET", path: this.path }, options)
    ).data;
    return this.info;
  }

  /** The files of the workspace (the cells' starting directory), in path order. */
  async files(options: RequestOptions = {}): Promise<WorkspaceListing> {
    const call = { method: "GET", path: `${this.path}/files` } as const;
    return (await this.transport.json<WorkspaceListing>(call, options)).data;
  }

  /** Write files into the workspace (replacing those of the same path); the new listing. */
  async writeFiles(files: InputFiles, options: RequestOptions = {}): Promise<WorkspaceListing> {
    const call = {
      method: "POST",
      path: `${this.path}/files`,
      json: { files: inputFiles(files) },
    } as const;
    return (await this.transport.json<WorkspaceListing>(call, options)).data;
  }

  /** Write one file, its bytes as the body (folders are made as needed). */
  async putFile(
    path: string,
    content: string | Uint8Array | Blob,
    options: RequestOptions = {},
  ): Promise<void> {
    // Bytes are copied to a plain `ArrayBuffer`: `BodyInit` excludes views of shared memory.
    const body =
      typeof content === "string"
        ? new TextEncoder().encode(content)
        : content instanceof Blob
          ? content
          : new Uint8Array(content);
    const call = {
      method: "PUT",
      path: `${this.path}/files/${filePath(path)}`,
      body,
      contentType: "application/octet-stream",
    } as const;
    await this.transport.json<undefined>(call, options);
  }

  /** The bytes of one workspace file (`NotFound` when there is none at `path`). */
  async readFile(path: string, options: RequestOptions = {}): Promise<Uint8Array> {
    const call = { method: "GET", path: `${this.path}/files/${filePath(path)}` } as const;
    return (await this.transport.bytes(call, options)).data;
  }

  /** Delete one workspace file (`NotFound` when there is none at `path`). */
  async deleteFile(path: string, options: RequestOptions = {}): Promise<void> {
    const call = { method: "DELETE", path: `${this.path}/files/${filePath(path)}` } as const;
    await this.transport.json<undefined>(call, options);
  }

  /** End the session now (a cell running then is told the session ended). */
  async end(options: RequestOptions = {}): Promise<void> {
    await this.transport.json<undefined>({ method: "DELETE", path: this.path }, options);
  }
}

/** `client.sessions`: open, find, list and end sessions. */
export class Sessions {
  private readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  /** Open a session (`language` defaults to python). `limits` may lower the service's: the
   * memory limit holds for the session's life, the others are each cell's defaults. */
  async create(options: SessionOptions = {}): Promise<Session> {
    const [body, request] = splitOptions(options);
    const call = { method: "POST", path: "/v1/sessions", json: body } as const;
    const info = await this.transport.json<SessionInfo>(call, request);
    return new Session(this.transport, info.data);
  }

  /** A handle on an existing session of the caller's (`NotFound` if there is none). */
  async attach(id: string, options: RequestOptions = {}): Promise<Session> {
    return new Session(this.transport, await this.get(id, options));
  }

  /** One session (an ended one says why it ended). */
  async get(id: string, options: RequestOptions = {}): Promise<SessionInfo> {
    const call = { method: "GET", path: `/v1/sessions/${segment(id)}` } as const;
    return (await this.transport.json<SessionInfo>(call, options)).data;
  }

  /** The caller's open sessions, on every node, oldest first. */
  async list(options: RequestOptions = {}): Promise<SessionList> {
    return (
      await this.transport.json<SessionList>({ method: "GET", path: "/v1/sessions" }, options)
    ).data;
  }

  /** End a session by id. */
  async end(id: string, options: RequestOptions = {}): Promise<void> {
    await this.transport.json<undefined>(
      { method: "DELETE", path: `/v1/sessions/${segment(id)}` },
      options,
    );
  }
}
