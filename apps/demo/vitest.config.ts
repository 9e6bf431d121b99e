import { defineProject } from "vitest/config";

// Unit tests of the demo's pure helpers (the browser end-to-end tests are e2e/*.test.mjs, run with node --test).
export default defineProject({
  test: {
    name: "demo",
    environment: "node",
    include: ["src/**/*.test.ts"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
    // one kernel thread by default: two test files run side by side on this 2-core machine, and
    // threads against each other only slow both down (core's threads tests ask for 2 and 3)
    env: { WASMFORMER_THREADS: "1" },
  },
});
