/**
 * A checkpoint-folder loader widget: file picker (several files or a whole folder), drag and drop,
 * a base URL, or a Hugging Face model id (`owner/name[@revision]`, from huggingface.co or the
 * `?hf_endpoint=` of the page; cached by the worker, so a second load is offline). The chosen files
 * go to the worker as `Blob`s; a URL or model id is fetched by the worker.
 */
import { proxy } from "comlink";
import { compute } from "./client.js";
import type { FolderSource, Progress } from "./tasks/folder.js";
import { clear, fmtBytes, h, progressBar, showError, statusLine } from "./ui.js";

export interface LoaderOptions<I> {
  id: string;
  /** the files the folder should hold, shown to the user */
  files: string;
  /** default URL in the URL box */
  url?: string;
  /** load `url` at once (the embedded model a page opens on) */
  autoload?: boolean;
  load(src: FolderSource, onProgress: (p: Progress) => void): Promise<I>;
  /** render a summary of the loaded model */
  describe(info: I): string;
  onLoaded(info: I): void;
}

/** Keep the last path component of `webkitRelativePath` / file name. */
const baseName = (f: File) => (f.webkitRelativePath || f.name).split("/").pop() ?? f.name;

export function folderLoader<I>(o: LoaderOptions<I>): HTMLElement {
  const files = h("input", { type: "file", multiple: true, id: `${o.id}-files` });
  const dir = h("input", { type: "file", id: `${o.id}-dir`, webkitdirectory: true });
  const url = h("input", {
    type: "url",
    id: `${o.id}-url`,
    size: 40,
    placeholder: "https://…/model-folder/",
    value: o.url ?? "",
  });
  const hubId = h("input", {
    type: "text",
    id: `${o.id}-hub-id`,
    size: 32,
    placeholder: "owner/name[@revision]",
    spellcheck: "false",
  });
  const hfEndpoint = new URLSearchParams(self.location.search).get("hf_endpoint") ?? undefined;
  const bar = progressBar("");
  bar.el.hidden = true;
  const status = statusLine();
  status.el.id = `${o.id}-status`;
  const err = h("div", {});
  const drop = h("div", { class: "drop", id: `${o.id}-drop` }, `Drop the checkpoint files here (${o.files})`);
  const cancel = h(
    "button",
    { id: `${o.id}-cancel`, hidden: true, title: "terminate the worker (models loaded in it are unloaded)" },
    "Cancel",
  );
  cancel.addEventListener("click", () => compute.cancel());

  let loads = 0;
  const start = async (src: FolderSource, embedded = false) => {
    // a newer load (e.g. the user's, while the embedded model loads) supersedes this one
    const mine = ++loads;
    clear(err);
    bar.el.hidden = false;
    bar.set(0, "starting…");
    status.set("running", "loading…");
    cancel.hidden = false;
    try {
      const info = await o.load(
        src,
        proxy((p: Progress) => {
          if (mine !== loads) return;
          bar.set(
            p.total ? p.loaded / p.total : 0,
            `${p.stage}: ${fmtBytes(p.loaded)}${p.total ? ` / ${fmtBytes(p.total)}` : ""}`,
          );
        }),
      );
      if (mine !== loads) return;
      bar.set(1, "loaded");
      status.set("done", o.describe(info));
      o.onLoaded(info);
    } catch (e) {
      if (mine !== loads) return;
      bar.el.hidden = true;
      // a build without this embedded model (its folder is not served): say so, not an error
      const { name = "", message = "" } = e as { name?: string; message?: string };
      if (embedded && /^(ConfigError|WeightsError)$/.test(name) && / not found at /.test(message)) {
        status.set("idle", "This build has no embedded model for this page: load a checkpoint folder.");
        status.el.dataset.embedded = "absent";
        return;
      }
      status.set("error", "loading failed");
      showError(err, e);
    } finally {
      if (mine === loads) cancel.hidden = true;
    }
  };
  const fromList = (list: FileList | File[]) => {
    const rec: Record<string, Blob> = {};
    for (const f of Array.from(list)) rec[baseName(f)] = f;
    if (Object.keys(rec).length === 0) return;
    void start({ kind: "files", files: rec });
  };
  files.addEventListener("change", () => files.files && fromList(files.files));
  dir.addEventListener("change", () => dir.files && fromList(dir.files));
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer?.files) fromList(e.dataTransfer.files);
  });
  if (o.autoload && o.url) {
    const u = o.url;
    queueMicrotask(() => void start({ kind: "url", url: u }, true));
  }
  return h(
    "div",
    { class: "card loader" },
    h("h3", {}, "Checkpoint"),
    h("p", { class: "muted" }, `A Hugging Face folder or model id: ${o.files}.`),
    h("div", { class: "actions" }, h("label", {}, "Files ", files), h("label", {}, "Folder ", dir)),
    drop,
    h(
      "div",
      { class: "actions" },
      url,
      h(
        "button",
        {
          id: `${o.id}-load-url`,
          onclick: () => url.value.trim() && void start({ kind: "url", url: url.value.trim() }),
        },
        "Load from URL",
      ),
    ),
    h(
      "div",
      { class: "actions" },
      hubId,
      h(
        "button",
        {
          id: `${o.id}-load-hub`,
          onclick: () =>
            hubId.value.trim() &&
            void start({ kind: "hub", id: hubId.value.trim(), ...(hfEndpoint ? { endpoint: hfEndpoint } : {}) }),
        },
        "Load model id",
      ),
    ),
    h("div", { class: "actions" }, bar.el, cancel),
    status.el,
    err,
  );
}
