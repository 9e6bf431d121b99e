import { h, unavailable } from "../ui.js";
import type { Page } from "./index.js";

export const vlmPage: Page = {
  id: "vlm",
  title: "VLM",
  mount(root) {
    root.append(
      h("h2", {}, "VLM"),
      unavailable("Visual question answering (@wasmformer/vlm)", "Its package has not landed in this build."),
    );
  },
};
