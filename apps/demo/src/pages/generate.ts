import { h, unavailable } from "../ui.js";
import type { Page } from "./index.js";

export const generatePage: Page = {
  id: "generate",
  title: "Text generation",
  mount(root) {
    root.append(
      h("h2", {}, "Text generation"),
      unavailable("GPT-2 text generation (@wasmformer/llm)", "Its package has not landed in this build."),
    );
  },
};
