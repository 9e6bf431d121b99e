// Demo benchmark (not a test): GPT-2-small-shaped and ViT-B/16-shaped random checkpoints, run in the
// demo in headless Chromium. Reports load time, tokens/s, ViT latency and main-thread long tasks.
// Run after `pnpm build`: node e2e/bench.mjs   (writes ~850 MB of checkpoints under dist/__bench__)
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { testImage, writeGpt2, writeVit } from "./checkpoints.mjs";
import { appDir, launch, measure, openPage, startPreview } from "./harness.mjs";

const dir = join(appDir, "dist", "__bench__");
rmSync(dir, { recursive: true, force: true });
const t = Date.now();
writeGpt2(join(dir, "gpt2"), { nLayer: 12, nHead: 12, nEmbd: 768, nPositions: 1024, vocabSize: 50257 });
writeVit(join(dir, "vit"), { layers: 12, heads: 12, hidden: 768, image: 224, patch: 16, labels: 1000 });
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "image.png"), testImage(320, 240).png);
console.log(`checkpoints written in ${((Date.now() - t) / 1000).toFixed(1)} s`);

const server = await startPreview();
const browser = await launch();
try {
  const { page } = await openPage(browser, `${server.url}#generate`);
  await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
  console.log("backend", await page.getAttribute("#backend", "data-backend"));
  let m = await measure(page, async () => {
    await page.fill("#gpt2-url", "/__bench__/gpt2/");
    await page.click("#gpt2-load-url");
    await page.waitForSelector('#gpt2-status[data-state="done"], #gpt2-status[data-state="error"]', {
      timeout: 600_000,
    });
  });
  console.log(
    `GPT-2 124M load: ${(m.ms / 1000).toFixed(1)} s, long tasks: ${m.longTasks.map((x) => x.duration.toFixed(0)).join(",") || "none"}`,
  );
  console.log(await page.textContent("#gpt2-status"));
  for (let i = 0; i < 2; i++) {
    await page.fill("#gen-max", "64");
    m = await measure(page, async () => {
      await page.click("#gen-run");
      await page.waitForSelector('#gen-status[data-state="done"], #gen-status[data-state="error"]', {
        timeout: 600_000,
      });
    });
    console.log(
      `GPT-2 124M generate 64: ${await page.textContent("#gen-rate")}; long tasks: ${m.longTasks.map((x) => x.duration.toFixed(0)).join(",") || "none"}`,
    );
  }
  await page.goto(`${server.url}#vit`);
  await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
  m = await measure(page, async () => {
    await page.fill("#vit-url", "/__bench__/vit/");
    await page.click("#vit-load-url");
    await page.waitForSelector('#vit-status[data-state="done"], #vit-status[data-state="error"]', { timeout: 600_000 });
  });
  console.log(
    `ViT-B/16 load: ${(m.ms / 1000).toFixed(1)} s; ${await page.textContent("#vit-status")}; long tasks: ${m.longTasks.map((x) => x.duration.toFixed(0)).join(",") || "none"}`,
  );
  await page.setInputFiles("#vit-image", join(dir, "image.png"));
  for (let i = 0; i < 3; i++) {
    m = await measure(page, async () => {
      await page.click("#vit-run");
      await page.waitForFunction(
        () =>
          /classified|failed/.test(document.querySelector("#page-vit > .status")?.textContent ?? "") &&
          document.querySelector("#page-vit > .status").dataset.state !== "running",
        null,
        { timeout: 600_000 },
      );
    });
    console.log(
      `ViT-B/16 classify 320x240 → 224: ${await page.textContent("#page-vit > .status")}; long tasks: ${m.longTasks.map((x) => x.duration.toFixed(0)).join(",") || "none"}`,
    );
  }
} finally {
  await browser.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
