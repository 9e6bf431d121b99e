import { fileURLToPath } from "node:url";
import { defineProject } from "vitest/config";

// Tests run against core's and text's TypeScript sources (not their possibly stale dist/), so that a
// kernel change shows up here at once. The wasm modules are still read from core's build/.
const src = (pkg: string, p: string) => fileURLToPath(new URL(`../${pkg}/src/${p}`, import.meta.url));

export default defineProject({
  resolve: {
    alias: [
      { find: /^@wasmformer\/core\/parity$/, replacement: src("core", "parity.ts") },
      { find: /^@wasmformer\/core$/, replacement: src("core", "index.ts") },
      { find: /^@wasmformer\/text$/, replacement: src("text", "index.ts") },
    ],
  },
  test: {
    name: "llm",
    environment: "node",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
    testTimeout: 120_000,
  },
});
