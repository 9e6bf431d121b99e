import { defineConfig } from "vite";

// Cross-origin isolation (SharedArrayBuffer, precise timers) for dev and preview.
const isolation = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };

// @wasmformer errors name themselves after their class (`new.target.name`): keep class names
// through minification so that the page shows "ConfigError: …", not a mangled name.
const output = { keepNames: true };

export default defineConfig({
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
