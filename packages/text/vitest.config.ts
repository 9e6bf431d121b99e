import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "text",
    environment: "node",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
    testTimeout: 120_000,
  },
});
