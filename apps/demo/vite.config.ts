import { defineConfig } from "vite";

// Cross-origin isolation (SharedArrayBuffer, precise timers) for dev and preview.
const isolation = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };

export default defineConfig({
  worker: { format: "es" },
  build: {
    target: "es2022",
    // never inline .wasm as a data: URL (Vite inlines assets under 4 KiB by default)
    assetsInlineLimit: (file: string) => (file.endsWith(".wasm") ? false : undefined),
  },
  server: { headers: isolation },
  preview: { headers: isolation, host: "127.0.0.1", port: 4173, strictPort: true },
});
