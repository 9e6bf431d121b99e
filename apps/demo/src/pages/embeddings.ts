import { h, unavailable } from "../ui.js";
import type { Page } from "./index.js";

export const embeddingsPage: Page = {
  id: "embeddings",
  title: "Word embeddings",
  mount(root) {
    root.append(
      h("h2", {}, "Word embeddings"),
      unavailable(
        "Word2Vec training (@wasmformer/text WordVectors/Word2Vec)",
        "Its package has not landed in this build.",
      ),
    );
  },
};
