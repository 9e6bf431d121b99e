import { fileURLToPath } from "node:url";
import { defineProject } from "vitest/config";

// Tests run against core's TypeScript sources (not its possibly stale dist/), so that a change in a
// kernel shows up here at once. The wasm modules are still read from core's build/.
const coreSrc = (p: string) => fileURLToPath(new URL(`../core/src/${p}`, import.meta.url));

export default defineProject({
  resolve: {
    alias: [
      { find: /^@wasmformer\/core\/parity$/, replacement: coreSrc("parity.ts") },
      { find: /^@wasmformer\/core$/, replacement: coreSrc("index.ts") },
    ],
  },
  test: {
    name: "vit",
    environment: "node",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
    testTimeout: 120_000,
  },
});
