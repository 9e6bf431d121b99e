#!/usr/bin/env node
// Time parseSafetensors on a valid file whose header lists many zero-size tensors named like
// `model.layers.N.weight` (issue 13 item 2: 32,000 entries well under 100 ms). Each run is a fresh
// process, as a user's first load is: "cold" is the first parse in it, "+ use" adds what a model
// loader then does (`names()` and `info()` of every tensor, which make the per-tensor objects), and
// "warm" is the median of 5 more parses in the same process. Medians of --runs processes; CPU time
// (every thread of the process, GC and compiler helpers included) is the steadier figure on a busy
// machine. Prints one README row (`CORE_DIST=<dist/index.js>` times another build, e.g. main's).
//   node packages/core/bench/safetensors-header.mjs [--entries 32000] [--runs 7]
import { spawnSync } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";

const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i < 0 ? d : Number(process.argv[i + 1]);
};

/** The file's bytes, built in a function so that nothing else of the building stays alive. */
function file(n) {
  const parts = [];
  for (let i = 0; i < n; i++)
    parts.push(`"model.layers.${i}.weight":{"dtype":"F32","shape":[${i % 3},0],"data_offsets":[0,0]}`);
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const bytes = new Uint8Array(8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  return bytes;
}

if (process.argv[2] === "--child") {
  const n = Number(process.argv[3]);
  const { parseSafetensors } = await import(process.env.CORE_DIST ?? "../dist/index.js");
  const bytes = file(n);
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  /** Wall and CPU ms of `fn()`. */
  const time = (fn) => {
    const t = performance.now();
    const c = cpu();
    fn();
    return [performance.now() - t, cpu() - c];
  };
  const use = (f) => {
    let size = 0;
    for (const name of f.names()) size += f.info(name).size;
    if (size !== 0) throw new Error("wrong sizes");
  };
  let f;
  const [cold, coldCpu] = time(() => {
    f = parseSafetensors(bytes);
  });
  const [used, usedCpu] = time(() => use(f));
  if (f.names().length !== n) throw new Error("wrong count");
  const warm = [];
  const warmCpu = [];
  for (let r = 0; r < 5; r++) {
    const [w, c] = time(() => parseSafetensors(bytes));
    warm.push(w);
    warmCpu.push(c);
  }
  const mid = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(
    JSON.stringify({
      cold,
      coldCpu,
      coldUse: cold + used,
      coldUseCpu: coldCpu + usedCpu,
      warm: mid(warm),
      warmCpu: mid(warmCpu),
      headerBytes: bytes.length - 8,
    }),
  );
} else {
  const n = arg("entries", 32000);
  const runs = arg("runs", 7);
  const load = loadavg()[0];
  const res = [];
  for (let r = 0; r < runs; r++) {
    const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", String(n)], { encoding: "utf8" });
    if (p.status !== 0) throw new Error(p.stderr);
    res.push(JSON.parse(p.stdout));
  }
  const med = (k) => res.map((x) => x[k]).sort((a, b) => a - b)[runs >> 1];
  const ms = (k) => `${med(k).toFixed(1)} ms (CPU ${med(`${k}Cpu`).toFixed(1)})`;
  const build = process.env.CORE_DIST ?? "packages/core/dist";
  console.log(
    "| build | entries (header) | cold: first parse | cold: parse + names() + info() of each | warm parse | load |",
  );
  console.log("|---|---|---|---|---|---|");
  console.log(
    `| ${build} | ${n.toLocaleString("en")} (${(res[0].headerBytes / 1e6).toFixed(2)} MB) | ${ms("cold")} | ` +
      `${ms("coldUse")} | ${ms("warm")} | ${load.toFixed(1)} → ${loadavg()[0].toFixed(1)} |`,
  );
  console.log(`medians of ${runs} processes, node ${process.version}`);
}
