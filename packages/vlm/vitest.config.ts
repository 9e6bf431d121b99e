import { fileURLToPath } from "node:url";
import { defineProject } from "vitest/config";

// Tests run against the TypeScript sources of the packages this one builds on (not their possibly
// stale dist/), so that a change there shows up here at once. The wasm modules are still read from
// core's build/.
const src = (pkg: string, p: string) => fileURLToPath(new URL(`../${pkg}/src/${p}`, import.meta.url));

export default defineProject({
  resolve: {
    alias: [
      { find: /^@wasmformer\/core\/parity$/, replacement: src("core", "parity.ts") },
      { find: /^@wasmformer\/core$/, replacement: src("core", "index.ts") },
      { find: /^@wasmformer\/text$/, replacement: src("text", "index.ts") },
      { find: /^@wasmformer\/vit$/, replacement: src("vit", "index.ts") },
      { find: /^@wasmformer\/llm\/parity$/, replacement: src("llm", "parity.ts") },
      { find: /^@wasmformer\/llm$/, replacement: src("llm", "index.ts") },
    ],
  },
  test: {
    name: "vlm",
    environment: "node",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
    testTimeout: 120_000,
  },
});
