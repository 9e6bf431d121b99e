import { h, unavailable } from "../ui.js";
import type { Page } from "./index.js";

export const attentionPage: Page = {
  id: "attention",
  title: "Attention",
  mount(root) {
    root.append(
      h("h2", {}, "Attention"),
      unavailable("Attention heatmaps", "Its package has not landed in this build."),
    );
  },
};
