// Packaging test: every publishable @wasmformer/* package passes publint, is packed with `pnpm pack`,
// and the tarballs are installed with plain `npm install` into a fresh project outside the workspace
// (os.tmpdir()). There, an ESM script uses core, text and nn in Node, and a fresh Vite app built from
// the tarballs runs the same code in Chromium, on the page and in a module worker (build + preview,
// and the dev server with the documented `optimizeDeps.exclude`).
// Run after `pnpm build`:  node --test tools/pack-test/   (needs the npm registry for vite/publint deps)
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const VITE = "8.3.8";

const packages = readdirSync(join(root, "packages"))
  .map((d) => ({
    dir: join(root, "packages", d),
    pkg: JSON.parse(readFileSync(join(root, "packages", d, "package.json"), "utf8")),
  }))
  .filter((p) => !p.pkg.private)
  .sort((a, b) => a.pkg.name.localeCompare(b.pkg.name));

let tmp;
const tarballs = {};

const run = (cmd, args, cwd, opts = {}) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20, ...opts });

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawn a server and wait until `url` answers. */
async function serve(args, cwd, port) {
  const proc = spawn(process.execPath, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  proc.stdout.on("data", (d) => (log += d));
  proc.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}/`;
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited (${proc.exitCode}):\n${log}`);
    try {
      if ((await fetch(url)).ok) break;
    } catch {}
    if (Date.now() - t0 > 30_000) {
      proc.kill();
      throw new Error(`no answer on ${url}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    url,
    log: () => log,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await done;
    },
  };
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), "wasmformer-pack-"));
  mkdirSync(join(tmp, "tarballs"));
});

after(() => {
  if (tmp && !process.env.KEEP_PACK_TEST) rmSync(tmp, { recursive: true, force: true });
});

describe("packages", () => {
  for (const { dir, pkg } of packages) {
    test(`${pkg.name}: publint clean, exports with types, sideEffects false, README`, () => {
      const out = run(process.execPath, [join(root, "node_modules", "publint", "src", "cli.js"), "--strict"], dir);
      assert.match(out, /All good!/, out);
      assert.equal(pkg.type, "module");
      assert.equal(pkg.sideEffects, false);
      assert.equal(typeof pkg.exports["."].types, "string");
      assert.ok(existsSync(join(dir, "README.md")), `${pkg.name} has no README.md`);
    });

    test(`${pkg.name}: pnpm pack`, () => {
      const before = new Set(readdirSync(join(tmp, "tarballs")));
      run("pnpm", ["pack", "--pack-destination", join(tmp, "tarballs")], dir);
      const made = readdirSync(join(tmp, "tarballs")).filter((f) => !before.has(f) && f.endsWith(".tgz"));
      assert.equal(made.length, 1, `expected one tarball, got ${made}`);
      tarballs[pkg.name] = join(tmp, "tarballs", made[0]);
      const list = run("tar", ["-tzf", tarballs[pkg.name]], tmp);
      assert.match(list, /package\/dist\/index\.js/);
      assert.match(list, /package\/dist\/index\.d\.ts/);
      assert.doesNotMatch(list, /\.test\.(js|ts)|\/src\/|\/test\//, "tests and sources are not shipped");
      if (pkg.name === "@wasmformer/core") {
        assert.match(list, /package\/build\/core\.wasm/);
        assert.match(list, /package\/build\/core-relaxed\.wasm/);
      }
      // workspace:* must have been rewritten to real versions
      const manifest = JSON.parse(run("tar", ["-xzOf", tarballs[pkg.name], "package/package.json"], tmp));
      assert.doesNotMatch(JSON.stringify(manifest.dependencies ?? {}), /workspace:/);
    });
  }
});

test("all wasm together is under 150 KB gzipped (tools/sizes.mjs --check)", () => {
  const out = run(process.execPath, [join(root, "tools", "sizes.mjs"), "--check"], root);
  const kb = Number(/all wasm together, gzipped: ([\d.]+) KB/.exec(out)?.[1]);
  assert.ok(kb > 0 && kb < 150, out);
});

describe("fresh project from the tarballs", () => {
  let app;
  const deps = () => Object.fromEntries(Object.entries(tarballs).map(([n, f]) => [n, `file:${f}`]));

  before(() => {
    app = join(tmp, "app");
    mkdirSync(join(app, "src"), { recursive: true });
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify(
        {
          name: "wasmformer-consumer",
          private: true,
          type: "module",
          dependencies: deps(),
          // the packages depend on each other by version: point those at the tarballs too
          overrides: deps(),
          devDependencies: { vite: VITE },
        },
        null,
        2,
      ),
    );
    copyFileSync(join(here, "check.js"), join(app, "src", "check.js"));
  });

  test("npm install (plain npm, outside the workspace)", () => {
    assert.ok(Object.keys(tarballs).length === packages.length, "every package was packed");
    run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], app, { timeout: 600_000 });
    assert.ok(existsSync(join(app, "node_modules", "@wasmformer", "core", "build", "core.wasm")));
    // not a link into the workspace
    assert.ok(!readFileSync(join(app, "package-lock.json"), "utf8").includes(root));
  });

  test("Node ESM script using core, text and nn", () => {
    writeFileSync(
      join(app, "node-test.mjs"),
      'import { check } from "./src/check.js";\nconsole.log(JSON.stringify(await check()));\n',
    );
    const r = JSON.parse(run(process.execPath, ["node-test.mjs"], app).trim());
    assertReport(r);
  });

  test("every package's entry points import from Node (exports resolve to shipped files)", () => {
    const specs = packages.flatMap(({ pkg }) =>
      Object.keys(pkg.exports)
        .filter((k) => !k.endsWith(".wasm") && !k.endsWith(".json") && !k.includes("*"))
        .map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`)),
    );
    // subpath patterns export files (e.g. the models' checkpoints), not modules: their folder ships
    for (const { pkg } of packages) {
      for (const [k, target] of Object.entries(pkg.exports)) {
        if (!k.includes("*")) continue;
        const dir = join(app, "node_modules", pkg.name, String(target).slice(2, String(target).indexOf("*")));
        assert.ok(existsSync(dir), `${pkg.name}: "${k}" points into ${dir}, which is not in the tarball`);
      }
    }
    writeFileSync(
      join(app, "import-all.mjs"),
      `const specs = ${JSON.stringify(specs)};\nconst out = {};\nfor (const s of specs) out[s] = Object.keys(await import(s)).length;\nconsole.log(JSON.stringify(out));\n`,
    );
    const counts = JSON.parse(run(process.execPath, ["import-all.mjs"], app).trim());
    for (const s of specs) assert.ok(counts[s] > 0, `${s} exports nothing`);
  });

  for (const mode of ["build", "dev"]) {
    test(`Vite app (${mode === "build" ? "vite build + preview" : "vite dev with optimizeDeps.exclude"}) in Chromium: page and module worker`, async () => {
      writeFileSync(
        join(app, "index.html"),
        '<!doctype html><html><body><pre id="out">running</pre><script type="module" src="/src/main.js"></script></body></html>\n',
      );
      writeFileSync(
        join(app, "src", "main.js"),
        [
          'import { check } from "./check.js";',
          'const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });',
          "const inWorker = new Promise((resolve, reject) => {",
          "  worker.onmessage = (e) => resolve(e.data);",
          "  worker.onerror = (e) => reject(new Error(e.message));",
          "});",
          "const out = document.getElementById('out');",
          "Promise.all([check(), inWorker]).then(",
          "  ([page, worker]) => { out.textContent = JSON.stringify({ page, worker }); out.dataset.done = '1'; },",
          "  (e) => { out.textContent = String(e && e.stack || e); out.dataset.done = 'error'; },",
          ");",
          "",
        ].join("\n"),
      );
      writeFileSync(
        join(app, "src", "worker.js"),
        'import { check } from "./check.js";\ncheck().then((r) => postMessage(r), (e) => postMessage({ error: String(e && e.stack || e) }));\n',
      );
      writeFileSync(
        join(app, "vite.config.js"),
        [
          "export default {",
          "  // keep the wasm as a file, and keep core out of dependency pre-bundling (its new URL(..., import.meta.url))",
          '  optimizeDeps: { exclude: ["@wasmformer/core"] },',
          '  worker: { format: "es" },',
          '  build: { assetsInlineLimit: (f) => (f.endsWith(".wasm") ? false : undefined) },',
          "};",
          "",
        ].join("\n"),
      );
      const vite = join(app, "node_modules", "vite", "bin", "vite.js");
      const port = await freePort();
      let server;
      if (mode === "build") {
        run(process.execPath, [vite, "build"], app, { timeout: 300_000 });
        const assets = readdirSync(join(app, "dist", "assets"));
        assert.ok(
          assets.some((f) => /^core(-relaxed)?-.*\.wasm$/.test(f)),
          `wasm emitted: ${assets}`,
        );
        server = await serve(
          [vite, "preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"],
          app,
          port,
        );
      } else {
        server = await serve([vite, "--host", "127.0.0.1", "--port", String(port), "--strictPort"], app, port);
      }
      const { launch } = await import(join(root, "apps", "demo", "e2e", "harness.mjs"));
      const browser = await launch();
      try {
        const page = await browser.newPage();
        const errors = [];
        page.on("pageerror", (e) => errors.push(String(e)));
        await page.goto(server.url);
        await page.waitForSelector("#out[data-done]", { timeout: 60_000 });
        const text = await page.textContent("#out");
        assert.equal(await page.getAttribute("#out", "data-done"), "1", text);
        const { page: p, worker: w } = JSON.parse(text);
        assertReport(p);
        assert.equal(w.error, undefined, w.error);
        assertReport(w);
        assert.match(p.backend, /^wasm-/, "the browser loaded the wasm kernels");
        assert.deepEqual(errors, []);
      } finally {
        await browser.close();
        await server.stop();
      }
    });
  }
});

function assertReport(r) {
  assert.match(r.backend, /^(wasm-simd|wasm-relaxed)$/, `backend ${r.backend}`);
  assert.ok(r.matmulErr < 1e-5, `matmul error ${r.matmulErr}`);
  assert.ok(r.softmaxErr < 1e-5, `softmax error ${r.softmaxErr}`);
  assert.deepEqual(r.sequences, [[3, 2, 8]]);
  assert.deepEqual(r.padded, [
    [1, 2, 3, 4],
    [1, 2, 3, 0],
    [1, 0, 0, 0],
  ]);
  assert.ok(r.mhaErr < 1e-4, `MultiheadAttention error ${r.mhaErr}`);
}
