import type { CausalLM } from "../src/gpt2-model.js";

/**
 * One training update whose arithmetic the tests know: zero the gradients, `lossAndGrad(batch, 1)`,
 * then w −= lr·∂L/∂w on every parameter (no optimizer state).
 */
export function sgdStepByHand(m: CausalLM, batch: Parameters<CausalLM["lossAndGrad"]>[0], lr: number): void {
  for (const p of m.parameters()) m.runtime.heap.f32(p.grad, p.size).fill(0);
  m.lossAndGrad(batch, 1);
  for (const p of m.parameters()) {
    const w = m.runtime.heap.f32(p.ptr, p.size);
    const g = m.runtime.heap.f32(p.grad, p.size);
    for (let i = 0; i < p.size; i++) w[i] -= lr * g[i];
  }
}
