import { fileURLToPath } from "node:url";
import { defineProject } from "vitest/config";

/**
 * The vitest project of a package that builds on other @wasmformer packages: tests under src/ and
 * test/, relaxed SIMD on, and each entry of `sources` ("core", "core/parity", …) resolved to that
 * package's TypeScript source (src/index.ts, src/parity.ts), not its possibly stale dist/, so that
 * a change there shows up here at once. The wasm modules are still read from core's build/.
 */
export function packageProject(name: string, sources: readonly string[]) {
  const alias = sources.map((entry) => {
    const [pkg, sub] = entry.split("/");
    const file = fileURLToPath(new URL(`../packages/${pkg}/src/${sub ?? "index"}.ts`, import.meta.url));
    return { find: new RegExp(`^@wasmformer/${entry}$`), replacement: file };
  });
  return defineProject({
    resolve: { alias },
    test: {
      name,
      environment: "node",
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      execArgv: ["--experimental-wasm-relaxed-simd"],
      // one kernel thread by default: two test files run side by side on this 2-core machine, and
      // threads against each other only slow both down (core's threads tests ask for 2 and 3)
      env: { WASMFORMER_THREADS: "1" },
      testTimeout: 120_000,
    },
  });
}
