// End-to-end harness: serves the built demo with `vite preview` on a free port, drives Debian's
// chromium through playwright-core (never `playwright install`), and watches the main thread with a
// PerformanceObserver('longtask') so tests can assert that it stays responsive while the worker computes.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { chromiumLaunchOptions } from "../../../tools/chromium.mjs";

export const appDir = join(dirname(fileURLToPath(import.meta.url)), "..");
export const outDir = join(appDir, "e2e-out");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start `vite preview` for the built app (or the dev server with `E2E_MODE=dev`); resolves to
 * { url, stop() }. `isolated: false` serves it without the COOP/COEP headers.
 */
export async function startPreview({ isolated = true } = {}) {
  const dev = process.env.E2E_MODE === "dev";
  if (!dev && !existsSync(join(appDir, "dist", "index.html"))) {
    throw new Error(`${join(appDir, "dist")} is missing: build the demo first (pnpm build)`);
  }
  const port = Number(process.env.E2E_PORT) || (await freePort());
  const vite = join(appDir, "node_modules", "vite", "bin", "vite.js");
  const proc = spawn(
    process.execPath,
    [vite, ...(dev ? [] : ["preview"]), "--host", "127.0.0.1", "--port", String(port), "--strictPort"],
    {
      cwd: appDir,
      stdio: ["ignore", "pipe", "pipe"],
      env: isolated ? process.env : { ...process.env, DEMO_NO_ISOLATION: "1" },
    },
  );
  let log = "";
  proc.stdout.on("data", (d) => (log += d));
  proc.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}/`;
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`vite preview exited (${proc.exitCode}):\n${log}`);
    try {
      const r = await fetch(url);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() - t0 > 20_000) {
      proc.kill("SIGTERM");
      throw new Error(`vite preview did not answer on ${url} within 20 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await done;
    },
  };
}

export async function launch() {
  return chromium.launch(chromiumLaunchOptions());
}

/** Records every main-thread long task (> 50 ms) with its start time, before any page script runs. */
const LONGTASK_OBSERVER = `
  window.__longtasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: "longtask", buffered: true });
`;

/** A new page with the long-task observer and error capture. */
export async function openPage(browser, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  await page.addInitScript(LONGTASK_OBSERVER);
  await page.goto(url);
  return { page, errors, context };
}

/**
 * Run `action` (which makes the worker compute and waits for the result) and return the main-thread
 * long tasks that overlapped it, plus how long it took.
 */
export async function measure(page, action) {
  const t0 = await page.evaluate(() => performance.now());
  await action();
  const t1 = await page.evaluate(() => performance.now());
  // long-task entries are delivered asynchronously: give the observer a frame to flush
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50))));
  const tasks = await page.evaluate(
    ([a, b]) => window.__longtasks.filter((t) => t.start < b && t.start + t.duration > a),
    [t0, t1],
  );
  return { longTasks: tasks, ms: t1 - t0 };
}

export async function screenshot(page, name) {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
