/**
 * Serves what the demo opens on, without copying it into the app's sources:
 * - `models/<name>/<file>`: the checkpoints of `@wasmformer/models` (its `checkpoints/` folder),
 * - `samples/digits.bin`: 40 held-out MNIST digits (4 per class) from the `mnist` package, as
 *   40 label bytes followed by 40 × 28 × 28 grey bytes (0 = background, 255 = ink).
 * `vite dev` answers them from a middleware; `vite build` writes them into the output folder, so
 * `vite preview` and any static server of `dist/` serve them as files.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join, sep } from "node:path";
import type { Plugin } from "vite";

const require = createRequire(import.meta.url);

/** `packages/models/checkpoints`, through the package's own exports (absent folders are fine). */
export const checkpointsDir = join(dirname(require.resolve("@wasmformer/models/package.json")), "checkpoints");

/** The sample digits: the last 4 samples of each class (the held-out tail of the `mnist` package). */
export function sampleDigits(perClass = 4): Uint8Array {
  const S = 28 * 28;
  const out = new Uint8Array(10 * perClass * (1 + S));
  for (let d = 0; d < 10; d++) {
    // the package stores each class as one flat array of [0, 1] values, 784 per digit
    const flat = (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data;
    const n = flat.length / S;
    for (let k = 0; k < perClass; k++) {
      const i = d * perClass + k;
      out[i] = d;
      const src = (n - 1 - k) * S;
      for (let p = 0; p < S; p++) out[10 * perClass + i * S + p] = Math.round(255 * flat[src + p]);
    }
  }
  return out;
}

const types: Record<string, string> = {
  json: "application/json",
  md: "text/markdown; charset=utf-8",
  txt: "text/plain; charset=utf-8",
};
const contentType = (file: string) => types[file.split(".").pop() ?? ""] ?? "application/octet-stream";

/** Every file under `dir`, as paths relative to it with `/` separators. */
function listFiles(dir: string, prefix = ""): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? listFiles(p, `${prefix}${n}/`) : [`${prefix}${n}`];
  });
}

export function embedded(): Plugin {
  let digits: Uint8Array | undefined;
  let base = "/";
  const serve = (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const path = decodeURIComponent((req.url ?? "").split("?")[0]);
    if (!path.startsWith(base)) {
      next();
      return;
    }
    const rel = path.slice(base.length);
    let body: Uint8Array | undefined;
    if (rel === "samples/digits.bin") body = digits ??= sampleDigits();
    else if (rel.startsWith("models/")) {
      const file = join(checkpointsDir, rel.slice("models/".length));
      // stay inside the checkpoints folder; a missing file falls through (the SPA answer, then a 404)
      if (file.startsWith(checkpointsDir + sep) && existsSync(file) && statSync(file).isFile())
        body = readFileSync(file);
    }
    if (!body) {
      next();
      return;
    }
    res.setHeader("Content-Type", contentType(rel));
    res.setHeader("Content-Length", body.byteLength);
    res.setHeader("Cache-Control", "no-cache");
    res.end(body);
  };
  return {
    name: "wasmformer:embedded-models",
    configResolved(config) {
      base = config.base.endsWith("/") ? config.base : `${config.base}/`;
    },
    configureServer(server) {
      // reading the package's 23 MB of JSON takes a few seconds: do it now, not on the first request
      digits ??= sampleDigits();
      server.middlewares.use(serve);
    },
    generateBundle() {
      // the app's bundle only, not the worker's (a worker build runs the plugins again)
      if (this.environment && this.environment.name !== "client") return;
      this.emitFile({ type: "asset", fileName: "samples/digits.bin", source: sampleDigits() });
      for (const f of listFiles(checkpointsDir)) {
        this.emitFile({ type: "asset", fileName: `models/${f}`, source: readFileSync(join(checkpointsDir, f)) });
      }
    },
  };
}
