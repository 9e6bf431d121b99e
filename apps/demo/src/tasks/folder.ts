/**
 * Checkpoint folders in the worker: the files a page picked (or dropped) are sent as `Blob`s (cloned by
 * reference, not copied), or the worker fetches them from a base URL, or from a Hugging Face model id
 * (core's `openModelFiles`: cached in the Cache Storage, so the next load of that id is offline),
 * reporting download progress.
 */
import { AbortError, ConfigError, InputError, openModelFiles, WeightsError } from "@wasmformer/core";

export type FolderSource =
  | { kind: "files"; files: Record<string, Blob> }
  | { kind: "url"; url: string }
  /** `owner/name[@revision]`; `endpoint` default https://huggingface.co */
  | { kind: "hub"; id: string; endpoint?: string };

export interface Progress {
  stage: string;
  loaded: number;
  total: number;
}

export type ProgressFn = (p: Progress) => void;

/** Fetch one file of a folder URL with byte progress; undefined when the server says 404. */
async function fetchFile(base: string, name: string, onProgress: ProgressFn): Promise<Blob | undefined> {
  const url = new URL(name, base.endsWith("/") ? base : `${base}/`);
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new InputError(`could not fetch ${url.href}: ${(e as Error).message}`);
  }
  if (res.status === 404) return undefined;
  if (!res.ok) throw new InputError(`could not fetch ${url.href}: HTTP ${res.status}`);
  // single-page-app servers (vite preview among them) answer a missing file with index.html
  if (res.headers.get("content-type")?.startsWith("text/html") && !name.endsWith(".html")) return undefined;
  const total = Number(res.headers.get("content-length")) || 0;
  if (!res.body) return res.blob();
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let loaded = 0;
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    const now = performance.now();
    if (now - last > 50) {
      onProgress({ stage: `downloading ${name}`, loaded, total });
      last = now;
    }
  }
  onProgress({ stage: `downloaded ${name}`, loaded, total: total || loaded });
  return new Blob(parts as BlobPart[]);
}

/**
 * The named files of a folder. `required` files that are missing raise a typed error naming the
 * file; `optional` ones are left out.
 */
export async function readFolder(
  src: FolderSource,
  required: readonly string[],
  optional: readonly string[],
  onProgress: ProgressFn,
): Promise<Record<string, Blob>> {
  const out: Record<string, Blob> = {};
  const names = [...required, ...optional];
  if (src.kind === "files") {
    for (const n of names) if (src.files[n]) out[n] = src.files[n];
  } else if (src.kind === "hub") {
    const files = await openModelFiles(src.id.trim(), {
      ...(src.endpoint ? { endpoint: src.endpoint } : {}),
      onDownload: (p) => onProgress({ stage: `downloading ${p.file}`, loaded: p.loaded, total: p.total ?? 0 }),
    });
    for (const n of names) {
      const b = await files.blob(n);
      if (b) out[n] = b;
    }
  } else {
    if (!/^(https?:|\/|\.)/.test(src.url)) throw new InputError(`not a URL: ${JSON.stringify(src.url)}`);
    const base = new URL(src.url, self.location.href).href;
    // all at once: a folder is a few small files and one large one, so the round trips overlap
    const got = await Promise.all(names.map((n) => fetchFile(base, n, onProgress)));
    names.forEach((n, i) => {
      const b = got[i];
      if (b) out[n] = b;
    });
  }
  const missing = required.filter((n) => !out[n]);
  if (missing.length > 0) {
    const where =
      src.kind === "url" ? ` at ${src.url}` : src.kind === "hub" ? ` in ${src.id}` : " among the chosen files";
    const weights = missing.filter((n) => n.endsWith(".safetensors"));
    if (weights.length > 0) throw new WeightsError(`${weights.join(", ")} not found${where}`, weights);
    throw new ConfigError(`${missing.join(", ")} not found${where}`);
  }
  return out;
}

/** Parse a JSON file of the folder, naming it in the error. */
export async function readJson(blob: Blob, name: string): Promise<unknown> {
  const text = await blob.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${name} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The latest load of a task wins: pages open on an embedded model while the user may load another
 * one meanwhile. `begin()` returns a check for the end of a load: when a newer load started
 * meanwhile it disposes what the older one built and throws an `AbortError`, so that a slow older
 * load can never replace a newer model.
 */
export type Latest = <M extends object>(built: M) => M;

export class LoadSlot {
  private n = 0;

  begin(): Latest {
    const mine = ++this.n;
    return (built) => {
      if (mine !== this.n) {
        (built as { dispose?(): void }).dispose?.();
        throw new AbortError("this load was superseded by a newer one");
      }
      return built;
    };
  }
}
