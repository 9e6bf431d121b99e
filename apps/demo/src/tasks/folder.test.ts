// The latest load of a task wins: an older load that ends later is disposed and rejected.
import { AbortError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { LoadSlot } from "./folder.js";

describe("LoadSlot", () => {
  it("keeps the newest load and disposes a superseded one", () => {
    const slot = new LoadSlot();
    const older = slot.begin();
    const newer = slot.begin();
    const a = {
      disposed: false,
      dispose() {
        this.disposed = true;
      },
    };
    const b = {
      disposed: false,
      dispose() {
        this.disposed = true;
      },
    };
    expect(newer(b)).toBe(b);
    expect(() => older(a)).toThrow(AbortError);
    expect(a.disposed).toBe(true);
    expect(b.disposed).toBe(false);
  });

  it("lets loads one after the other through", () => {
    const slot = new LoadSlot();
    const a = { n: 1 };
    const b = { n: 2 };
    const first = slot.begin();
    expect(first(a)).toBe(a);
    const second = slot.begin();
    expect(second(b)).toBe(b);
  });
});
