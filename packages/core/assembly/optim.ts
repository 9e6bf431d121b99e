// Optimizer updates over a parameter tensor in the heap (values, gradient and the optimizer's
// buffers), in exactly the float32 operation order of the reference twin (src/backend/ref-optim.ts)
// and of packages/nn/src/optim.ts: every multiply, add, divide and sqrt is a single IEEE f32
// operation (no fused multiply-add, also in the relaxed build), so results match bit for bit.
// Tails run the same vector code on a lane loaded alone.

// @ts-ignore: decorator
@inline function ld(p: usize, i: i32, vec: bool): v128 {
  return vec ? v128.load(p + (<usize>i << 2)) : f32x4.splat(load<f32>(p + (<usize>i << 2)));
}

// @ts-ignore: decorator
@inline function st(p: usize, i: i32, v: v128, vec: bool): void {
  if (vec) v128.store(p + (<usize>i << 2), v);
  else store<f32>(p + (<usize>i << 2), f32x4.extract_lane(v, 0));
}

/**
 * Adam / AdamW step over n floats (see OptimKernels.adamStep in src/kernels.ts):
 * g = sign·grad; wd ≠ 0: θ = θ·decay (decoupled) or g = g + wd·θ; m = b1·m + c1·g;
 * v = b2·v + c2·(g·g); vmax = max(vmax, v) when vmax ≠ 0; θ = θ − stepSize·(m / (sqrt(v̂)/bc2 + eps)).
 */
export function adamStep(
  theta: usize, grad: usize, m: usize, v: usize, vmax: usize, n: i32,
  b1: f32, c1: f32, b2: f32, c2: f32, eps: f32, stepSize: f32, bc2: f32,
  wd: f32, decay: f32, decoupled: i32, sign: f32,
): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) adam4(theta, grad, m, v, vmax, i, true, b1, c1, b2, c2, eps, stepSize, bc2, wd, decay, decoupled, sign);
  for (; i < n; i++) adam4(theta, grad, m, v, vmax, i, false, b1, c1, b2, c2, eps, stepSize, bc2, wd, decay, decoupled, sign);
}

// @ts-ignore: decorator
@inline function adam4(
  theta: usize, grad: usize, m: usize, v: usize, vmax: usize, i: i32, vec: bool,
  b1: f32, c1: f32, b2: f32, c2: f32, eps: f32, stepSize: f32, bc2: f32,
  wd: f32, decay: f32, decoupled: i32, sign: f32,
): void {
  let th = ld(theta, i, vec);
  let g = f32x4.mul(f32x4.splat(sign), ld(grad, i, vec));
  if (wd != 0) {
    if (decoupled) th = f32x4.mul(th, f32x4.splat(decay));
    else g = f32x4.add(g, f32x4.mul(f32x4.splat(wd), th));
  }
  const mi = f32x4.add(f32x4.mul(f32x4.splat(b1), ld(m, i, vec)), f32x4.mul(f32x4.splat(c1), g));
  const vi = f32x4.add(f32x4.mul(f32x4.splat(b2), ld(v, i, vec)), f32x4.mul(f32x4.splat(c2), f32x4.mul(g, g)));
  st(m, i, mi, vec);
  st(v, i, vi, vec);
  let vh = vi;
  if (vmax) {
    vh = f32x4.max(ld(vmax, i, vec), vi);
    st(vmax, i, vh, vec);
  }
  const denom = f32x4.add(f32x4.div(f32x4.sqrt(vh), f32x4.splat(bc2)), f32x4.splat(eps));
  th = f32x4.sub(th, f32x4.mul(f32x4.splat(stepSize), f32x4.div(mi, denom)));
  st(theta, i, th, vec);
}

/**
 * SGD step over n floats (see OptimKernels.sgdStep): d = sign·grad (+ wd·θ); with a momentum
 * buffer (buf ≠ 0) b = d on the first step, else b = mu·b + damp1·d; d = d + mu·b (nesterov) or b;
 * θ = θ − lr·d.
 */
export function sgdStep(
  theta: usize, grad: usize, buf: usize, n: i32,
  lr: f32, wd: f32, mu: f32, damp1: f32, first: i32, nesterov: i32, sign: f32,
): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) sgd4(theta, grad, buf, i, true, lr, wd, mu, damp1, first, nesterov, sign);
  for (; i < n; i++) sgd4(theta, grad, buf, i, false, lr, wd, mu, damp1, first, nesterov, sign);
}

// @ts-ignore: decorator
@inline function sgd4(
  theta: usize, grad: usize, buf: usize, i: i32, vec: bool,
  lr: f32, wd: f32, mu: f32, damp1: f32, first: i32, nesterov: i32, sign: f32,
): void {
  const th = ld(theta, i, vec);
  let d = f32x4.mul(f32x4.splat(sign), ld(grad, i, vec));
  if (wd != 0) d = f32x4.add(d, f32x4.mul(f32x4.splat(wd), th));
  if (buf) {
    const b = first ? d : f32x4.add(f32x4.mul(f32x4.splat(mu), ld(buf, i, vec)), f32x4.mul(f32x4.splat(damp1), d));
    st(buf, i, b, vec);
    d = nesterov ? f32x4.add(d, f32x4.mul(f32x4.splat(mu), b)) : b;
  }
  st(theta, i, f32x4.sub(th, f32x4.mul(f32x4.splat(lr), d)), vec);
}
