import { attentionPage } from "./attention.js";
import { embeddingsPage } from "./embeddings.js";
import { generatePage } from "./generate.js";
import { seq2seqPage } from "./seq2seq.js";
import { textPage } from "./text.js";
import { trainPage } from "./train.js";
import { vitPage } from "./vit.js";
import { vlmPage } from "./vlm.js";

export interface Page {
  id: string;
  title: string;
  mount(root: HTMLElement): void;
}

/** The first page is the one the demo opens on. */
export const pages: Page[] = [
  vitPage,
  trainPage,
  generatePage,
  attentionPage,
  embeddingsPage,
  seq2seqPage,
  vlmPage,
  textPage,
];
