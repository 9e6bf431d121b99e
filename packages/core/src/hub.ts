/**
 * Where a model's files come from: a local folder (Node) or a Hugging Face hub repository named by
 * its id (`owner/name`, optionally `@revision`). Every package's `fromPretrained` / `loadPretrained`
 * reads its checkpoint through `openModelFiles`, so each accepts both.
 *
 * The rule that tells them apart: an existing path is a folder; otherwise a string of the form
 * `owner/name[@revision]` (each part letters, digits, `_`, `-`, `.`, starting and ending with a
 * letter, digit or `_`, no `--` or `..`, at most 96 characters; the revision letters, digits, `_`,
 * `-`, `.` and `/`) is a model id; anything else is a folder (that does not exist, so the loader
 * reports its missing `config.json`). `./owner/name` or an absolute path is never an id.
 *
 * A hub file is `<endpoint>/<owner>/<name>/resolve/<revision>/<file>` (endpoint default
 * `https://huggingface.co`, or `HF_ENDPOINT` in Node; revision default `main`). It is downloaded
 * once, whole, and cached: in Node under `<cacheDir>/<owner>/<name>/<revision>/<file>` with
 * `cacheDir` default `$HF_HOME/wasmformer` (`HF_HOME` default `$XDG_CACHE_HOME/huggingface`, else
 * `~/.cache/huggingface`); in browsers and workers in the Cache Storage `wasmformer-hub` (keyed by
 * URL). A 404 means "the model has no such file" and is cached too, so a second load whose files are
 * all cached makes no request at all. The cache is keyed by the revision's name: a branch (`main`)
 * is not re-checked; pin a commit hash, or delete its folder, to get a newer one.
 *
 * `node:*` modules are imported dynamically with non-literal specifiers so that bundlers leave this
 * module alone.
 */
import { AbortError, DownloadError, InputError } from "./errors.js";
import { type LazySafetensorsFile, openSafetensors, type SafetensorsOptions } from "./safetensors.js";

/** Download progress of one file: `total` is the `Content-Length` (undefined when the server sends none). */
export interface DownloadProgress {
  file: string;
  loaded: number;
  total: number | undefined;
}

/** Options of `openModelFiles` for model ids (ignored for local folders). */
export interface HubOptions {
  /** Hub endpoint, e.g. a mirror (default `HF_ENDPOINT` in Node, else `https://huggingface.co`). */
  endpoint?: string;
  /** Branch, tag or commit (default the id's `@revision`, else `main`). */
  revision?: string;
  /** Node: the cache folder (default `$HF_HOME/wasmformer`, `HF_HOME` default `~/.cache/huggingface`). */
  cacheDir?: string;
  /** Called as each file downloads: once at its start (loaded 0), then after every chunk. */
  onDownload?: (p: DownloadProgress) => void;
  /** Cancels downloads: an `AbortError`; the file being downloaded is not cached. */
  signal?: AbortSignal;
}

/** A parsed model id. */
export interface ModelId {
  owner: string;
  name: string;
  /** `owner/name` */
  repo: string;
  /** The `@revision` part, when given. */
  revision: string | undefined;
}

/** The files of a model, read by name (`sub/dir/file` for files in subfolders). */
export interface ModelFiles {
  /** The folder path, or `owner/name@revision`: how messages name the model. */
  readonly location: string;
  /** Set when the files come from a hub. */
  readonly hub: { repo: string; revision: string; endpoint: string } | undefined;
  /** The path or URL of `name`, for messages. */
  where(name: string): string;
  /** The text of `name`, or undefined when the model has no such file. */
  text(name: string): Promise<string | undefined>;
  /** The bytes of `name` as a Blob, or undefined when the model has no such file. */
  blob(name: string): Promise<Blob | undefined>;
  /** `name` opened for lazy tensor reads (the caller closes it), or undefined when absent. */
  safetensors(name: string, opts?: SafetensorsOptions): Promise<LazySafetensorsFile | undefined>;
  /** Whether the model has `name`, without downloading it (a `HEAD` request when not cached). */
  exists(name: string): Promise<boolean>;
  /** The files of the subfolder `dir`. */
  sub(dir: string): ModelFiles;
}

const isNode = typeof process !== "undefined" && !!process.versions?.node;
const FS_PROMISES = "node:fs/promises";
const PATH = "node:path";
const OS = "node:os";
type Fs = typeof import("node:fs/promises");
type Path = typeof import("node:path");
const nodeFs = async () => (await import(/* @vite-ignore */ FS_PROMISES)) as Fs;
const nodePath = async () => (await import(/* @vite-ignore */ PATH)) as Path;

export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";
/** The Cache Storage name of downloaded hub files (browsers and workers). */
export const HUB_CACHE_NAME = "wasmformer-hub";
/** Header of a cached "this file is absent" entry. */
const ABSENT = "x-wasmformer-absent";

const PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;
const REVISION = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;

/** `owner/name[@revision]` parsed, or undefined when `s` is not of that form (see the module comment). */
export function parseModelId(s: string): ModelId | undefined {
  if (typeof s !== "string") return undefined;
  const at = s.indexOf("@");
  const repo = at < 0 ? s : s.slice(0, at);
  const revision = at < 0 ? undefined : s.slice(at + 1);
  const parts = repo.split("/");
  if (parts.length !== 2) return undefined;
  if (!parts.every((p) => PART.test(p) && !p.includes("--") && !p.includes(".."))) return undefined;
  if (revision !== undefined && !validRevision(revision)) return undefined;
  return { owner: parts[0], name: parts[1], repo, revision };
}

const validRevision = (r: string) => REVISION.test(r) && !r.split("/").some((p) => p === "." || p === "..");

/**
 * The files of `folderOrId`: a local folder (Node) when that path exists, else a hub repository
 * when it is a model id `owner/name[@revision]`, else the (missing) folder.
 * @example
 * ```ts
 * const files = await openModelFiles("openai-community/gpt2", { onDownload: (p) => console.log(p) });
 * const config = JSON.parse((await files.text("config.json")) ?? "{}");
 * const weights = await files.safetensors("model.safetensors");
 * ```
 */
export async function openModelFiles(folderOrId: string, opts: HubOptions = {}): Promise<ModelFiles> {
  if (typeof folderOrId !== "string" || folderOrId === "") {
    throw new InputError(
      `expected a folder path or a model id (owner/name[@revision]), got ${JSON.stringify(folderOrId) ?? String(folderOrId)}`,
    );
  }
  if (opts === null || typeof opts !== "object") throw new InputError(`options must be an object, got ${opts}`);
  for (const k of ["endpoint", "revision", "cacheDir"] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== "string")
      throw new InputError(`${k} must be a string, got ${JSON.stringify(opts[k]) ?? typeof opts[k]}`);
  }
  if (opts.onDownload !== undefined && typeof opts.onDownload !== "function")
    throw new InputError(`onDownload must be a function, got ${typeof opts.onDownload}`);
  if (isNode) {
    const fs = await nodeFs();
    if (
      await fs.stat(folderOrId).then(
        () => true,
        () => false,
      )
    )
      return folderFiles(folderOrId);
  }
  const id = parseModelId(folderOrId);
  if (id) return hubFiles(id, opts);
  if (isNode) return folderFiles(folderOrId);
  throw new InputError(
    `${JSON.stringify(folderOrId)} is not a model id (owner/name[@revision]); folders are read in Node only`,
  );
}

/** The path parts of a file name inside a model (`a/b.json` → ["a", "b.json"]); no `.`, `..` or empty part. */
function fileParts(name: string, where: string): string[] {
  const parts = typeof name === "string" ? name.split("/") : [];
  if (parts.length === 0 || parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\\"))) {
    throw new InputError(`invalid file name ${JSON.stringify(name)} in ${where} (expected a/b/file, no "." or "..")`);
  }
  return parts;
}

/** A subfolder name without a leading `./` or trailing `/` (`""` or `"."`: the folder itself). */
const trimDir = (dir: string) => (typeof dir === "string" ? dir.replace(/^(\.\/)+/, "").replace(/\/+$/, "") : dir);

const errText = (e: unknown): string => {
  const err = e as { message?: string; cause?: { message?: string; code?: string } };
  const cause = err.cause ? ` (${err.cause.code ?? err.cause.message})` : "";
  return `${err.message ?? String(e)}${cause}`;
};

// ---------------------------------------------------------------------------------------------
// local folder (Node)

function folderFiles(dir: string): ModelFiles {
  const join = async (name: string) => (await nodePath()).join(dir, ...fileParts(name, dir));
  const missing = (e: unknown) => ["ENOENT", "ENOTDIR"].includes((e as { code?: string }).code ?? "");
  const self: ModelFiles = {
    location: dir,
    hub: undefined,
    where: (name) => `${dir.replace(/[\\/]+$/, "")}/${name}`,
    async text(name) {
      const p = await join(name);
      try {
        return await (await nodeFs()).readFile(p, "utf8");
      } catch (e) {
        if (missing(e)) return undefined;
        throw new InputError(`cannot read ${p}: ${(e as Error).message}`);
      }
    },
    async blob(name) {
      const p = await join(name);
      try {
        return new Blob([await (await nodeFs()).readFile(p)]);
      } catch (e) {
        if (missing(e)) return undefined;
        throw new InputError(`cannot read ${p}: ${(e as Error).message}`);
      }
    },
    async safetensors(name, opts) {
      if (!(await self.exists(name))) return undefined;
      return openSafetensors(await join(name), opts);
    },
    async exists(name) {
      const p = await join(name);
      return (await nodeFs()).access(p).then(
        () => true,
        () => false,
      );
    },
    sub: (sub) => {
      const d = trimDir(sub);
      return d === "" ? self : folderFiles(`${dir.replace(/[\\/]+$/, "")}/${fileParts(d, dir).join("/")}`);
    },
  };
  return self;
}

// ---------------------------------------------------------------------------------------------
// hub repository

/** Node's default cache folder: `$HF_HOME/wasmformer` (HF_HOME default `$XDG_CACHE_HOME/huggingface`, `~/.cache/huggingface`). */
export async function defaultHubCacheDir(): Promise<string> {
  const path = await nodePath();
  const env = process.env;
  let home = env.HF_HOME;
  if (!home) {
    const os = (await import(/* @vite-ignore */ OS)) as typeof import("node:os");
    home = path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "huggingface");
  }
  return path.join(home, "wasmformer");
}

/** Where a hub file is kept once downloaded. */
interface Stored {
  path?: string;
  blob?: Blob;
}

function hubFiles(id: ModelId, opts: HubOptions, prefix = ""): ModelFiles {
  if (opts.revision !== undefined && (typeof opts.revision !== "string" || !validRevision(opts.revision))) {
    throw new InputError(`revision must be a branch, tag or commit name, got ${JSON.stringify(opts.revision)}`);
  }
  if (opts.revision !== undefined && id.revision !== undefined && opts.revision !== id.revision) {
    throw new InputError(`model id ${id.repo}@${id.revision} and option revision "${opts.revision}" disagree`);
  }
  const revision = opts.revision ?? id.revision ?? "main";
  const envEndpoint = isNode ? process.env.HF_ENDPOINT : undefined;
  const endpoint = (opts.endpoint ?? (envEndpoint || DEFAULT_HUB_ENDPOINT)).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]/i.test(endpoint)) {
    throw new InputError(`hub endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  }
  const location = `${id.repo}@${revision}`;
  const full = (name: string) => prefix + fileParts(name, location).join("/");
  const url = (name: string) =>
    `${endpoint}/${id.repo}/resolve/${encodeURIComponent(revision)}/${full(name).split("/").map(encodeURIComponent).join("/")}`;
  const signal = opts.signal;
  const checkAbort = (what: string) => {
    if (signal?.aborted) throw new AbortError(`download of ${what} aborted`);
  };

  /** GET (or HEAD) a file: the response, or undefined on 404. */
  const request = async (name: string, method: "GET" | "HEAD"): Promise<Response | undefined> => {
    const u = url(name);
    checkAbort(u);
    let res: Response;
    try {
      res = await fetch(u, { method, signal });
    } catch (e) {
      if (signal?.aborted) throw new AbortError(`download of ${u} aborted`);
      throw new DownloadError(`cannot fetch ${u}: ${errText(e)}`, u, undefined, { cause: e });
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel();
      const hint = res.status === 401 || res.status === 403 ? " (no such repository, or it is private or gated)" : "";
      throw new DownloadError(`cannot fetch ${u}: HTTP ${res.status}${hint}`, u, res.status);
    }
    return res;
  };

  /** Read a response body chunk by chunk into `sink`, reporting progress. */
  const drain = async (name: string, res: Response, sink: (chunk: Uint8Array) => Promise<void> | void) => {
    const u = url(name);
    const file = full(name);
    const length = Number(res.headers.get("content-length"));
    const total = res.headers.get("content-length") !== null && Number.isFinite(length) ? length : undefined;
    let loaded = 0;
    opts.onDownload?.({ file, loaded, total });
    try {
      if (!res.body) {
        const b = new Uint8Array(await res.arrayBuffer());
        await sink(b);
        loaded = b.length;
        opts.onDownload?.({ file, loaded, total });
      } else {
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await sink(value);
          loaded += value.length;
          opts.onDownload?.({ file, loaded, total });
        }
      }
    } catch (e) {
      if (signal?.aborted) throw new AbortError(`download of ${u} aborted`);
      if (e instanceof DownloadError || e instanceof InputError) throw e;
      throw new DownloadError(`download of ${u} broke off after ${loaded} bytes: ${errText(e)}`, u, res.status, {
        cause: e,
      });
    }
    const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
    if (total !== undefined && !encoded && loaded !== total) {
      throw new DownloadError(`download of ${u} ended after ${loaded} of ${total} bytes`, u, res.status);
    }
  };

  // ---- Node: a cache folder
  /** The cache paths of a file and of its "absent" marker, and which of them exists (null: neither). */
  const nodeCached = async (name: string) => {
    const fs = await nodeFs();
    const path = await nodePath();
    const root = path.join(
      opts.cacheDir ?? (await defaultHubCacheDir()),
      id.owner,
      id.name,
      encodeURIComponent(revision),
    );
    const parts = full(name).split("/");
    const file = path.join(root, ...parts);
    const marker = path.join(root, ".absent", ...parts);
    const isFile = (p: string) =>
      fs.stat(p).then(
        (s) => s.isFile(),
        () => false,
      );
    const state = (await isFile(file)) ? "present" : (await isFile(marker)) ? "absent" : null;
    return { root, file, marker, state };
  };
  const nodeStore = async (name: string): Promise<Stored | undefined> => {
    const fs = await nodeFs();
    const path = await nodePath();
    const { root, file, marker, state } = await nodeCached(name);
    if (state === "present") return { path: file };
    if (state === "absent") return undefined;
    const res = await request(name, "GET");
    try {
      if (!res) {
        await fs.mkdir(path.dirname(marker), { recursive: true });
        await fs.writeFile(marker, "");
        return undefined;
      }
      await fs.mkdir(path.dirname(file), { recursive: true });
    } catch (e) {
      await res?.body?.cancel();
      throw new InputError(`cannot write the hub cache at ${root}: ${(e as Error).message}`);
    }
    const part = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.part`;
    const fh = await fs.open(part, "w");
    try {
      await drain(name, res, async (chunk) => {
        await fh.write(chunk);
      });
      await fh.close();
      await fs.rename(part, file);
    } catch (e) {
      await fh.close().catch(() => undefined);
      await fs.rm(part, { force: true });
      throw e;
    }
    return { path: file };
  };

  // ---- browsers and workers: Cache Storage (or memory where there is none, e.g. an insecure page)
  const webStore = async (name: string): Promise<Stored | undefined> => {
    const u = url(name);
    const cache = typeof caches !== "undefined" ? await caches.open(HUB_CACHE_NAME).catch(() => undefined) : undefined;
    const hit = await cache?.match(u);
    if (hit) return hit.headers.get(ABSENT) ? undefined : { blob: await hit.blob() };
    const res = await request(name, "GET");
    if (!res) {
      await cache?.put(u, new Response("", { headers: { [ABSENT]: "1" } })).catch(() => undefined);
      return undefined;
    }
    const chunks: Uint8Array[] = [];
    await drain(name, res, (c) => {
      chunks.push(c);
    });
    const blob = new Blob(chunks as BlobPart[]);
    // a cache that refuses (quota) only costs the next load a download
    await cache
      ?.put(u, new Response(blob, { headers: { "content-length": String(blob.size) } }))
      .catch(() => undefined);
    return { blob };
  };

  const pending = new Map<string, Promise<Stored | undefined>>();
  const fetchFile = (name: string): Promise<Stored | undefined> => {
    const key = full(name);
    let p = pending.get(key);
    if (!p) {
      p = isNode ? nodeStore(name) : webStore(name);
      pending.set(key, p);
      p.catch(() => pending.delete(key));
    }
    return p;
  };

  return {
    location: prefix ? `${location}/${prefix.replace(/\/$/, "")}` : location,
    hub: { repo: id.repo, revision, endpoint },
    where: url,
    async text(name) {
      const s = await fetchFile(name);
      if (!s) return undefined;
      return s.blob ? s.blob.text() : (await nodeFs()).readFile(s.path as string, "utf8");
    },
    async blob(name) {
      const s = await fetchFile(name);
      if (!s) return undefined;
      return s.blob ?? new Blob([await (await nodeFs()).readFile(s.path as string)]);
    },
    async safetensors(name, o) {
      const s = await fetchFile(name);
      if (!s) return undefined;
      return openSafetensors(s.blob ?? (s.path as string), o);
    },
    async exists(name) {
      const done = pending.get(full(name));
      if (done) return (await done) !== undefined;
      if (isNode) {
        const { state } = await nodeCached(name);
        if (state !== null) return state === "present";
      }
      const res = await request(name, "HEAD");
      return res !== undefined;
    },
    sub: (dir) => (trimDir(dir) === "" ? hubFiles(id, opts, prefix) : hubFiles(id, opts, `${full(trimDir(dir))}/`)),
  };
}
