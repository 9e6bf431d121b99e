/**
 * The reference optimizer kernels (`OptimKernels` in kernels.ts): the same float32 operations as
 * assembly/optim.ts, one `Math.fround` per operation, so both agree bit for bit.
 */
import type { Heap } from "../heap.js";
import type { OptimKernels } from "../kernels.js";

const r = Math.fround;

export function refOptimKernels(heap: Heap): OptimKernels {
  const F = () => new Float32Array(heap.buffer());
  return {
    adamStep(theta, grad, m, v, vmax, n, b1, c1, b2, c2, eps, stepSize, bc2, wd, decay, decoupled, sign) {
      const f = F();
      [b1, c1, b2, c2, eps, stepSize, bc2, wd, decay, sign] = [b1, c1, b2, c2, eps, stepSize, bc2, wd, decay, sign].map(
        r,
      );
      const t = theta >> 2;
      const g0 = grad >> 2;
      const m0 = m >> 2;
      const v0 = v >> 2;
      const x0 = vmax >> 2;
      for (let i = 0; i < n; i++) {
        let th = f[t + i]!;
        let g = r(sign * f[g0 + i]!);
        if (wd !== 0) {
          if (decoupled) th = r(th * decay);
          else g = r(g + r(wd * th));
        }
        const mi = r(r(b1 * f[m0 + i]!) + r(c1 * g));
        const vi = r(r(b2 * f[v0 + i]!) + r(c2 * r(g * g)));
        f[m0 + i] = mi;
        f[v0 + i] = vi;
        let vh = vi;
        if (vmax) {
          vh = Math.max(f[x0 + i]!, vi);
          f[x0 + i] = vh;
        }
        const denom = r(r(r(Math.sqrt(vh)) / bc2) + eps);
        f[t + i] = r(th - r(stepSize * r(mi / denom)));
      }
    },

    sgdStep(theta, grad, buf, n, lr, wd, mu, damp1, first, nesterov, sign) {
      const f = F();
      [lr, wd, mu, damp1, sign] = [lr, wd, mu, damp1, sign].map(r);
      const t = theta >> 2;
      const g0 = grad >> 2;
      const b0 = buf >> 2;
      for (let i = 0; i < n; i++) {
        const th = f[t + i]!;
        let d = r(sign * f[g0 + i]!);
        if (wd !== 0) d = r(d + r(wd * th));
        if (buf) {
          const b = first ? d : r(r(mu * f[b0 + i]!) + r(damp1 * d));
          f[b0 + i] = b;
          d = nesterov ? r(d + r(mu * b)) : b;
        }
        f[t + i] = r(th - r(lr * d));
      }
    },
  };
}
