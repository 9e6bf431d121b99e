import { h, unavailable } from "../ui.js";
import type { Page } from "./index.js";

export const vitPage: Page = {
  id: "vit",
  title: "ViT",
  mount(root) {
    root.append(
      h("h2", {}, "ViT"),
      unavailable("ViT classification (@wasmformer/vit)", "Its package has not landed in this build."),
    );
  },
};
