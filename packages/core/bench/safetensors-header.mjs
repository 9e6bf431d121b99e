#!/usr/bin/env node
// Time parseSafetensors on a valid file whose header lists many zero-size tensors (issue 13 item 2:
// 32,000 entries well under 100 ms). Each size is parsed in a fresh process (cold, as a user's first
// load is) and then warm; medians of --runs processes. CPU time is reported too: on a busy machine
// it is the steadier figure.
//   node packages/core/bench/safetensors-header.mjs [--entries 32000] [--runs 7]
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i < 0 ? d : Number(process.argv[i + 1]);
};

if (process.argv[2] === "--child") {
  const n = Number(process.argv[3]);
  const { parseSafetensors } = await import(process.env.CORE_DIST ?? "../dist/index.js");
  const parts = [];
  for (let i = 0; i < n; i++)
    parts.push(`"model.layers.${i}.weight":{"dtype":"F32","shape":[${i % 3},0],"data_offsets":[0,0]}`);
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const bytes = new Uint8Array(8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const t0 = performance.now();
  const c0 = cpu();
  const f = parseSafetensors(bytes);
  const cold = performance.now() - t0;
  const coldCpu = cpu() - c0;
  if (f.names().length !== n) throw new Error("wrong count");
  const warm = [];
  const warmCpu = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    const c = cpu();
    parseSafetensors(bytes);
    warm.push(performance.now() - t);
    warmCpu.push(cpu() - c);
  }
  const mid = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(JSON.stringify({ cold, coldCpu, warm: mid(warm), warmCpu: mid(warmCpu), headerBytes: json.length }));
} else {
  const n = arg("entries", 32000);
  const runs = arg("runs", 7);
  const res = [];
  for (let r = 0; r < runs; r++) {
    const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", String(n)], { encoding: "utf8" });
    if (p.status !== 0) throw new Error(p.stderr);
    res.push(JSON.parse(p.stdout));
  }
  const med = (k) => res.map((x) => x[k]).sort((a, b) => a - b)[runs >> 1];
  console.log(
    `${n} entries (${(res[0].headerBytes / 1e6).toFixed(2)} MB header): cold ${med("cold").toFixed(1)} ms ` +
      `(CPU ${med("coldCpu").toFixed(1)} ms), warm ${med("warm").toFixed(1)} ms (CPU ${med("warmCpu").toFixed(1)} ms); ` +
      `medians of ${runs} processes (CPU time counts every thread of the process, GC helpers included)`,
  );
}
