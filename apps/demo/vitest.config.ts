import { defineProject } from "vitest/config";

// Unit tests of the demo's pure helpers (the browser end-to-end tests are e2e/*.test.mjs, run with node --test).
export default defineProject({
  test: {
    name: "demo",
    environment: "node",
    include: ["src/**/*.test.ts"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
  },
});
