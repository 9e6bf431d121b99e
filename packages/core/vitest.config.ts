import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "core",
    environment: "node",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
    // one kernel thread by default: two test files run side by side on this 2-core machine, and
    // threads against each other only slow both down (core's threads tests ask for 2 and 3)
    env: { WASMFORMER_THREADS: "1" },
    testTimeout: 60_000,
  },
});
