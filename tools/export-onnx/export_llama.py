"""Export a Llama-family decoder with random weights to ONNX with a KV cache, plus the same weights as a
Hugging Face folder (config.json + model.safetensors), for packages/llm/bench/llama.mjs (wasmformer vs
onnxruntime-web). Default shape: SmolLM2-135M (576 wide, 30 layers, 9 heads / 3 KV heads, MLP 1536,
vocabulary 49152, rope_theta 1e5, tied embeddings).

The model is written in plain PyTorch with `transformers`' LlamaForCausalLM names and semantics
(RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention), so only Debian's python3-torch is needed:

    /usr/bin/python3 tools/export-onnx/export_llama.py --out /tmp/llama-bench [--layers 30 --hidden 576 ...]

ONNX graph (opset 14), one graph for prefill and decode, computing the logits generation needs (the
last position only; the benchmark's own engine does the same work):
    inputs   input_ids int64 [B, T], past_key_values.{i}.key / .value float32 [B, KV, P, d] (P may be 0)
    outputs  logits float32 [B, 1, V], present.{i}.key / .value float32 [B, KV, P + T, d]
"""
import argparse
import json
import math
import os

import torch
from torch import nn

from export_gpt2 import export_with_cache, write_safetensors


class RMSNorm(nn.Module):
    def __init__(self, D, eps):
        super().__init__()
        self.weight = nn.Parameter(1 + torch.randn(D) * 0.02)
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Layer(nn.Module):
    def __init__(self, D, H, KV, d, I, eps):
        super().__init__()
        self.H, self.KV, self.d = H, KV, d
        self.input_layernorm = RMSNorm(D, eps)
        self.post_attention_layernorm = RMSNorm(D, eps)
        lin = lambda i, o: nn.Linear(i, o, bias=False)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = lin(D, H * d), lin(D, KV * d), lin(D, KV * d), lin(H * d, D)
        self.gate_proj, self.up_proj, self.down_proj = lin(D, I), lin(D, I), lin(I, D)

    def forward(self, x, cos, sin, past_k, past_v):
        B, T, _ = x.shape
        H, KV, d = self.H, self.KV, self.d
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, H, d).transpose(1, 2)
        k = self.k_proj(h).view(B, T, KV, d).transpose(1, 2)
        v = self.v_proj(h).view(B, T, KV, d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        S = k.shape[2]
        g = H // KV  # consecutive query heads share one key/value head
        kk = k[:, :, None].expand(B, KV, g, S, d).reshape(B, H, S, d)
        vv = v[:, :, None].expand(B, KV, g, S, d).reshape(B, H, S, d)
        att = (q @ kk.transpose(-2, -1)) / math.sqrt(d)
        qpos = torch.arange(T).unsqueeze(1) + (S - T)
        att = att.masked_fill(torch.arange(S).unsqueeze(0) > qpos, float("-inf"))
        y = (torch.softmax(att, dim=-1) @ vv).transpose(1, 2).reshape(B, T, H * d)
        x = x + self.o_proj(y)
        h = self.post_attention_layernorm(x)
        x = x + self.down_proj(nn.functional.silu(self.gate_proj(h)) * self.up_proj(h))
        return x, k, v


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.d = a.hidden // a.heads
        self.theta = a.rope_theta
        self.embed_tokens = nn.Parameter(torch.randn(a.vocab, a.hidden) * 0.02)
        self.layers = nn.ModuleList(
            [Layer(a.hidden, a.heads, a.kv_heads, self.d, a.intermediate, a.eps) for _ in range(a.layers)]
        )
        self.norm = RMSNorm(a.hidden, a.eps)

    def forward(self, input_ids, *past):
        B, T = input_ids.shape
        P0 = past[0].shape[2]
        pos = (torch.arange(T) + P0).float()
        inv = 1.0 / (self.theta ** (torch.arange(0, self.d, 2).float() / self.d))
        ang = pos[:, None] * inv[None, :]
        emb = torch.cat([ang, ang], dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        x = self.embed_tokens[input_ids]
        presents = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cos, sin, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        logits = self.norm(x[:, -1:]) @ self.embed_tokens.t()  # lm_head tied to embed_tokens
        return (logits, *presents)

    def hf_state_dict(self):
        sd = {"model.embed_tokens.weight": self.embed_tokens, "model.norm.weight": self.norm.weight}
        for i, l in enumerate(self.layers):
            p = f"model.layers.{i}."
            sd[p + "input_layernorm.weight"] = l.input_layernorm.weight
            sd[p + "post_attention_layernorm.weight"] = l.post_attention_layernorm.weight
            for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                sd[p + f"self_attn.{n}.weight"] = getattr(l, n).weight
            for n in ("gate_proj", "up_proj", "down_proj"):
                sd[p + f"mlp.{n}.weight"] = getattr(l, n).weight
        return {k: v.detach().contiguous().float() for k, v in sd.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--hidden", type=int, default=576)
    ap.add_argument("--intermediate", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--heads", type=int, default=9)
    ap.add_argument("--kv-heads", type=int, default=3)
    ap.add_argument("--rope-theta", type=float, default=100000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--max-positions", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = Llama(a).eval()
    os.makedirs(a.out, exist_ok=True)
    config = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": a.vocab,
        "hidden_size": a.hidden, "intermediate_size": a.intermediate, "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": a.hidden // a.heads,
        "hidden_act": "silu", "rms_norm_eps": a.eps, "rope_theta": a.rope_theta, "rope_scaling": None,
        "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": True,
        "max_position_embeddings": a.max_positions, "bos_token_id": 0, "eos_token_id": 0, "pretraining_tp": 1,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    write_safetensors(os.path.join(a.out, "model.safetensors"), model.hf_state_dict())

    export_with_cache(model, a.out, a.vocab, a.layers, a.kv_heads, a.hidden // a.heads, logits_seq_axis=False)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
