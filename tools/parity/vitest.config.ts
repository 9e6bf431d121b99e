import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "parity",
    environment: "node",
    include: ["test/**/*.test.{ts,mjs}"],
    execArgv: ["--experimental-wasm-relaxed-simd"],
    testTimeout: 300_000,
  },
});
