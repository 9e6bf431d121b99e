/**
 * Node-only byte access for `openSafetensors`: a `fs/promises` file handle read by range.
 *
 * `node:fs/promises` is imported dynamically (with a non-literal specifier, so bundlers leave it
 * alone): this module is safe to include in browser bundles as long as nothing calls it there.
 */
import type { FileHandle } from "node:fs/promises";
import { InputError } from "./errors.js";
import type { ByteRangeReader } from "./safetensors.js";

const FS_PROMISES = "node:fs/promises";

/** Open `path` (a path string or `file:` URL) for range reads. Each `read` fills a fresh buffer. */
export async function openFileReader(path: string | URL): Promise<ByteRangeReader> {
  const fs = (await import(/* @vite-ignore */ FS_PROMISES)) as typeof import("node:fs/promises");
  let fh: FileHandle;
  let size: number;
  try {
    fh = await fs.open(path, "r");
  } catch (e) {
    throw new InputError(`cannot open ${String(path)}: ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InputError(`cannot open ${String(path)}: not a regular file`);
    size = st.size;
  } catch (e) {
    await fh.close();
    throw e instanceof InputError ? e : new InputError(`cannot stat ${String(path)}: ${(e as Error).message}`);
  }
  let closed = false;
  return {
    size,
    async read(offset, length) {
      if (closed) throw new InputError(`${String(path)}: read after close()`);
      const buf = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break; // end of file (it shrank since open): the caller reports it
        got += bytesRead;
      }
      return got === length ? buf : buf.subarray(0, got);
    },
    async readInto(offset, dst) {
      if (closed) throw new InputError(`${String(path)}: read after close()`);
      let got = 0;
      while (got < dst.length) {
        const { bytesRead } = await fh.read(dst, got, dst.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got;
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}
