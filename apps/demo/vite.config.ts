import type { IncomingMessage, ServerResponse } from "node:http";
import { defineConfig, type Plugin } from "vite";
import { embedded } from "./vite-embedded.js";

// Cross-origin isolation (SharedArrayBuffer for the kernel threads, precise timers) for dev and
// preview; DEMO_NO_ISOLATION=1 leaves the headers out (the e2e test of the one-thread fallback).
const isolation =
  process.env.DEMO_NO_ISOLATION === "1"
    ? {}
    : { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };

// @wasmformer errors name themselves after their class (`new.target.name`): keep class names
// through minification so that the page shows "ConfigError: …", not a mangled name.
const output = { keepNames: true };

// Checkpoint files have no registered MIME type, so the servers would gzip them on the fly (about
// 40 MB/s here, and float weights do not compress): ask for them uncompressed.
const weightsUncompressed: Plugin = {
  name: "wasmformer:weights-uncompressed",
  configureServer(server) {
    server.middlewares.use(identityForWeights);
  },
  configurePreviewServer(server) {
    server.middlewares.use(identityForWeights);
  },
};
function identityForWeights(req: IncomingMessage, _res: ServerResponse, next: () => void): void {
  if (/\.(safetensors|bin|gguf|onnx)(\?|$)/.test(req.url ?? "")) req.headers["accept-encoding"] = "identity";
  next();
}

export default defineConfig({
  plugins: [weightsUncompressed, embedded()],
  worker: { format: "es", rolldownOptions: { output } },
  build: {
    target: "es2022",
    // never inline .wasm as a data: URL (Vite inlines assets under 4 KiB by default)
    assetsInlineLimit: (file: string) => (file.endsWith(".wasm") ? false : undefined),
    rolldownOptions: { output },
  },
  // dev: pre-bundle what only the worker imports, so that the first visit does not trigger a re-optimise + reload
  optimizeDeps: { include: ["comlink"] },
  server: { headers: isolation },
  preview: { headers: isolation, host: "127.0.0.1", port: 4173, strictPort: true },
});
