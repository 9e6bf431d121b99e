/**
 * One `LoadSlot` per kind of model in the worker. The worker's API takes a ticket the moment a load
 * call arrives (before awaiting kernels or task code), so the order of the calls, not the order in
 * which their awaits resume, decides which load wins.
 */
import { LoadSlot } from "./folder.js";

export const loadSlots = {
  gpt2: new LoadSlot(),
  seq2seq: new LoadSlot(),
  vectors: new LoadSlot(),
  vit: new LoadSlot(),
  vlm: new LoadSlot(),
};
