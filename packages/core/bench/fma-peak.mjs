// The f32x4 arithmetic ceiling of this machine, for reading the GEMM figures: twelve independent
// relaxed_madd (fused multiply-add) chains in registers, no memory traffic. Compiled from
// AssemblyScript source at run time. Not a test.
//
//   node --experimental-wasm-relaxed-simd bench/fma-peak.mjs
import asc from "assemblyscript/asc";
import { cpuSeconds } from "./util.mjs";

const ACCS = Array.from({ length: 12 }, (_, i) => `a${i}`);
// m and c are parameters: a v128.const inside the loop would be rebuilt on every use by V8
const SOURCE = `
export function run(n: i32, mul: f32, add: f32): f32 {
  ${ACCS.map((a) => `let ${a} = f32x4.splat(1);`).join(" ")}
  const m = f32x4.splat(mul), c = f32x4.splat(add);
  for (let i = 0; i < n; i++) { ${ACCS.map((a) => `${a} = f32x4.relaxed_madd(${a}, m, c);`).join(" ")} }
  let s = a0;
  ${ACCS.slice(1)
    .map((a) => `s = f32x4.add(s, ${a});`)
    .join(" ")}
  return f32x4.extract_lane(s, 0);
}`;

/** Median GFLOP/s (CPU time) of the register-only relaxed_madd loop. */
export async function fmaPeak(rounds = 7) {
  const options = { optimizeLevel: 3, runtime: "stub", enable: ["simd", "relaxed-simd"] };
  const { binary, stderr } = await asc.compileString(SOURCE, options);
  if (!binary) throw new Error(`fma-peak: asc failed: ${stderr}`);
  const run = new WebAssembly.Instance(new WebAssembly.Module(binary), {}).exports.run;
  // warm up until V8 has tiered the loop up from its baseline compiler (Liftoff runs it at a
  // twentieth of the speed, and a call already running is not replaced): short calls for 300 ms
  const t = performance.now();
  while (performance.now() - t < 300) run(1e5, 0.9999999, 1e-7);
  const r = [];
  for (let k = 0; k < rounds; k++) {
    const n = 1e7;
    const t0 = cpuSeconds();
    run(n, 0.9999999, 1e-7);
    r.push((n * ACCS.length * 8) / (cpuSeconds() - t0) / 1e9);
  }
  return r.sort((a, b) => a - b)[rounds >> 1];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`relaxed_madd, 12 chains in registers: ${(await fmaPeak()).toFixed(1)} GFLOP/s`);
}
