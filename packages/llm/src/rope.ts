/**
 * Rotary position embedding frequencies (Su et al. 2021) as Hugging Face computes them
 * (transformers `modeling_rope_utils.py`): θ_j = rope_theta^(−2j/d) for j < d/2, then the
 * `rope_scaling` variant of the config:
 *
 * - `null` / `"default"`: θ_j as is;
 * - `"linear"` (position interpolation): θ_j / factor;
 * - `"dynamic"` (NTK-aware, `_compute_dynamic_ntk_parameters`): for a sequence of `seqLen` positions
 *   beyond `max_position_embeddings`, the base becomes
 *   `rope_theta · (factor·seqLen/max_position_embeddings − (factor − 1))^(d/(d−2))`; at or below it
 *   the frequencies are the default ones;
 * - `"llama3"` (`_compute_llama3_parameters`): with wavelength λ_j = 2π/θ_j, L = original_max_position_embeddings,
 *   λ_j > L/low_freq_factor → θ_j/factor; λ_j < L/high_freq_factor → θ_j; in between
 *   (1 − s)·θ_j/factor + s·θ_j with s = (L/λ_j − low_freq_factor)/(high_freq_factor − low_freq_factor).
 *
 * Every variant here keeps HF's attention scaling of 1 (cos and sin are not rescaled).
 */
import { ConfigError, showValue } from "@wasmformer/core";

export type RopeScaling =
  | { rope_type: "linear"; factor: number }
  | { rope_type: "dynamic"; factor: number }
  | {
      rope_type: "llama3";
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    };

/** The rope types this package computes (`"default"` is read as no scaling). */
export const ROPE_TYPES = ["default", "linear", "dynamic", "llama3"] as const;

/**
 * Read `config.rope_scaling` (HF accepts the type under `rope_type` or, in older configs, `type`).
 * `null`, absent and `{"rope_type": "default"}` mean no scaling. Anything else unsupported or
 * ill-typed is a `ConfigError` naming the field (`rope_scaling.rope_type`, `rope_scaling.factor`, …).
 */
export function parseRopeScaling(raw: unknown, field = "rope_scaling"): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new ConfigError(`expected an object or null, got ${showValue(raw)}`, field);
  const o = raw as Record<string, unknown>;
  const typeKey = Object.hasOwn(o, "rope_type") ? "rope_type" : Object.hasOwn(o, "type") ? "type" : undefined;
  const type = typeKey === undefined ? "default" : o[typeKey];
  if (typeof type !== "string" || !(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(
      `unsupported rope scaling type ${showValue(type)} (supported: ${ROPE_TYPES.map((t) => JSON.stringify(t)).join(", ")})`,
      `${field}.${typeKey ?? "rope_type"}`,
    );
  }
  const num = (key: string, check: (v: number) => boolean, expected: string): number => {
    const v = o[key];
    if (typeof v !== "number" || !Number.isFinite(v) || !check(v))
      throw new ConfigError(
        `expected ${expected}, got ${showValue(v)} (required for rope type ${JSON.stringify(type)})`,
        `${field}.${key}`,
      );
    return v;
  };
  if (type === "default") return null;
  const factor = num("factor", (v) => v > 0, "a positive number");
  if (type === "linear" || type === "dynamic") return { rope_type: type, factor };
  const low = num("low_freq_factor", (v) => v > 0, "a positive number");
  const high = num("high_freq_factor", (v) => v > low, `a number greater than low_freq_factor (${low})`);
  const orig = num("original_max_position_embeddings", (v) => Number.isInteger(v) && v > 0, "a positive integer");
  return {
    rope_type: "llama3",
    factor,
    low_freq_factor: low,
    high_freq_factor: high,
    original_max_position_embeddings: orig,
  };
}

export interface RopeParams {
  /** Rotated features per head (even). */
  headDim: number;
  /** `rope_theta`, the base. */
  theta: number;
  scaling: RopeScaling | null;
  /** `max_position_embeddings` (used by `"dynamic"`). */
  maxPositions: number;
}

/**
 * The d/2 inverse frequencies θ_j (float64) for a forward pass over `seqLen` positions (only
 * `"dynamic"` depends on it; default: `maxPositions`, where dynamic equals the default frequencies).
 */
export function ropeInvFreq(p: RopeParams, seqLen = p.maxPositions): Float64Array {
  const d = p.headDim;
  const half = d >> 1;
  let base = p.theta;
  const sc = p.scaling;
  if (sc?.rope_type === "dynamic" && seqLen > p.maxPositions) {
    base = p.theta * ((sc.factor * seqLen) / p.maxPositions - (sc.factor - 1)) ** (d / (d - 2));
  }
  const inv = new Float64Array(half);
  for (let j = 0; j < half; j++) inv[j] = 1 / base ** ((2 * j) / d);
  if (sc?.rope_type === "linear") for (let j = 0; j < half; j++) inv[j] /= sc.factor;
  if (sc?.rope_type === "llama3") {
    const L = sc.original_max_position_embeddings;
    const lowWavelen = L / sc.low_freq_factor;
    const highWavelen = L / sc.high_freq_factor;
    for (let j = 0; j < half; j++) {
      const wavelen = (2 * Math.PI) / inv[j];
      if (wavelen > lowWavelen) inv[j] /= sc.factor;
      else if (!(wavelen < highWavelen)) {
        const s = (L / wavelen - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
        inv[j] = ((1 - s) * inv[j]) / sc.factor + s * inv[j];
      }
    }
  }
  return inv;
}
