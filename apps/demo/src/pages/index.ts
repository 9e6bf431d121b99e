import { attentionPage } from "./attention.js";
import { embeddingsPage } from "./embeddings.js";
import { generatePage } from "./generate.js";
import { textPage } from "./text.js";
import { vitPage } from "./vit.js";
import { vlmPage } from "./vlm.js";

export interface Page {
  id: string;
  title: string;
  mount(root: HTMLElement): void;
}

export const pages: Page[] = [textPage, embeddingsPage, attentionPage, vitPage, generatePage, vlmPage];
