/**
 * The demo shell: a tab per page (hash routing: #vit, #train, #generate, #attention, #embeddings,
 * #seq2seq, #vlm, #text; no hash opens the first). Pages are mounted once, when first shown, and
 * kept, so switching tabs keeps their state.
 */
import "./style.css";
import { compute } from "./client.js";
import { pages } from "./pages/index.js";
import { clear, h } from "./ui.js";

const tabs = document.getElementById("tabs") as HTMLElement;
const main = document.getElementById("page") as HTMLElement;
const backend = document.getElementById("backend") as HTMLElement;

const mounted = new Map<string, HTMLElement>();

function show(id: string): void {
  const page = pages.find((p) => p.id === id) ?? pages[0];
  for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.page === page.id));
  for (const [pid, el] of mounted) el.hidden = pid !== page.id;
  if (!mounted.has(page.id)) {
    const el = h("div", { class: "page", id: `page-${page.id}` });
    mounted.set(page.id, el);
    main.append(el);
    page.mount(el);
  }
  document.title = `${page.title} · wasmformer`;
}

clear(tabs);
for (const p of pages) {
  tabs.append(h("button", { role: "tab", "data-page": p.id, onclick: () => (location.hash = p.id) }, p.title));
}
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
show(location.hash.slice(1));

async function startWorker(): Promise<void> {
  try {
    // `?threads=N` asks for N kernel threads (the worker's default leaves one core to the page)
    const asked = Number(new URLSearchParams(location.search).get("threads"));
    const r = await compute.run((api) => api.init(Number.isInteger(asked) && asked > 0 ? asked : undefined));
    const threads =
      r.threads > 1 ? `${r.threads} threads` : `1 thread${r.threadsReason ? ` (${r.threadsReason})` : ""}`;
    backend.textContent = `worker ready · backend ${r.backend} · ${threads}${r.crossOriginIsolated ? " · cross-origin isolated" : ""}`;
    performance.mark("worker-ready");
    backend.dataset.backend = r.backend;
    backend.dataset.threads = String(r.threads);
    backend.className = "muted";
  } catch (e) {
    backend.textContent = `worker failed to start: ${(e as Error).message}`;
    backend.className = "error";
  }
}
compute.onRestart((reason) => {
  delete backend.dataset.backend;
  delete backend.dataset.threads;
  if (reason === "cancel") {
    backend.textContent = "worker restarted";
    void startWorker();
  } else {
    // do not loop on a worker that cannot load: the next computation tries again
    backend.textContent = "the worker failed (see the page); it restarts on the next computation";
    backend.className = "error";
  }
});
void startWorker();

// Warm up the 2D canvas while idle: its first context, first raster and first fillText (font
// loading) cost tens of milliseconds, which would otherwise land in the first plotted result.
const warm = () => {
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx) return;
  ctx.putImageData(ctx.createImageData(2, 2), 0, 0);
  ctx.fillRect(0, 0, 4, 4);
  ctx.font = "10px sans-serif";
  ctx.fillText("warm-up 0123456789", 0, 10);
  ctx.getImageData(0, 0, 1, 1);
};
if ("requestIdleCallback" in window) requestIdleCallback(warm, { timeout: 500 });
else setTimeout(warm, 100);

// for the end-to-end tests: how much of the work the kernel threads took
(window as unknown as { __threadStats: () => Promise<unknown> }).__threadStats = () =>
  compute.run((api) => api.threadStats());
