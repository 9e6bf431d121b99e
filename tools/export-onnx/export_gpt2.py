"""Export a GPT-2 with random weights to ONNX with a KV cache, plus the same weights as a Hugging Face
folder (config.json + model.safetensors), for packages/llm/bench (wasmformer vs onnxruntime-web).

The model is written in plain PyTorch (nanoGPT-style, Hugging Face GPT2LMHeadModel names and Conv1D
layout [in, out]), so `transformers` is not needed: Debian's python3-torch is enough.

    /usr/bin/python3 tools/export-onnx/export_gpt2.py --out /tmp/gpt2-bench [--n-layer 12 --n-embd 768 ...]

ONNX graph (opset 14), one graph for prefill and decode:
    inputs   input_ids int64 [B, T], past_key_values.{i}.key / .value float32 [B, H, P, hs] (P may be 0)
    outputs  logits float32 [B, 1, V] (the last position: what generation needs, and what the
             benchmark's own engine computes, so both do equal work; `--logits all` gives [B, T, V]),
             present.{i}.key / .value float32 [B, H, P + T, hs]
"""
import argparse
import json
import math
import os
import struct

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, E, H, inner):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(E, eps=1e-5)
        self.ln_2 = nn.LayerNorm(E, eps=1e-5)
        # HF Conv1D: weight [in, out], y = x @ W + b
        self.c_attn_w = nn.Parameter(torch.randn(E, 3 * E) * 0.02)
        self.c_attn_b = nn.Parameter(torch.zeros(3 * E))
        self.c_proj_w = nn.Parameter(torch.randn(E, E) * 0.02)
        self.c_proj_b = nn.Parameter(torch.zeros(E))
        self.c_fc_w = nn.Parameter(torch.randn(E, inner) * 0.02)
        self.c_fc_b = nn.Parameter(torch.zeros(inner))
        self.mlp_proj_w = nn.Parameter(torch.randn(inner, E) * 0.02)
        self.mlp_proj_b = nn.Parameter(torch.zeros(E))

    def forward(self, x, past_k, past_v):
        B, T, E = x.shape
        H = self.H
        hs = E // H
        qkv = self.ln_1(x) @ self.c_attn_w + self.c_attn_b
        q, k, v = qkv.split(E, dim=2)
        q = q.view(B, T, H, hs).transpose(1, 2)  # (B, H, T, hs)
        k = torch.cat([past_k, k.view(B, T, H, hs).transpose(1, 2)], dim=2)  # (B, H, P+T, hs)
        v = torch.cat([past_v, v.view(B, T, H, hs).transpose(1, 2)], dim=2)
        S = k.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, H, T, S)
        qpos = torch.arange(T).unsqueeze(1) + (S - T)
        kpos = torch.arange(S).unsqueeze(0)
        att = att.masked_fill(kpos > qpos, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, E)
        x = x + (y @ self.c_proj_w + self.c_proj_b)
        h = nn.functional.gelu(self.ln_2(x) @ self.c_fc_w + self.c_fc_b, approximate="tanh")
        x = x + (h @ self.mlp_proj_w + self.mlp_proj_b)
        return x, k, v


class GPT2(nn.Module):
    def __init__(self, V, P, E, L, H, inner, last_only=True):
        super().__init__()
        self.last_only = last_only
        self.wte = nn.Parameter(torch.randn(V, E) * 0.02)
        self.wpe = nn.Parameter(torch.randn(P, E) * 0.01)
        self.h = nn.ModuleList([Block(E, H, inner) for _ in range(L)])
        self.ln_f = nn.LayerNorm(E, eps=1e-5)

    def forward(self, input_ids, *past):
        B, T = input_ids.shape
        P0 = past[0].shape[2]
        pos = torch.arange(T) + P0
        x = self.wte[input_ids] + self.wpe[pos].unsqueeze(0)
        presents = []
        for i, blk in enumerate(self.h):
            x, k, v = blk(x, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        if self.last_only:
            x = x[:, -1:]
        logits = self.ln_f(x) @ self.wte.t()  # lm_head tied to wte
        return (logits, *presents)

    def hf_state_dict(self):
        sd = {"transformer.wte.weight": self.wte, "transformer.wpe.weight": self.wpe}
        for i, b in enumerate(self.h):
            p = f"transformer.h.{i}."
            sd.update({
                p + "ln_1.weight": b.ln_1.weight, p + "ln_1.bias": b.ln_1.bias,
                p + "attn.c_attn.weight": b.c_attn_w, p + "attn.c_attn.bias": b.c_attn_b,
                p + "attn.c_proj.weight": b.c_proj_w, p + "attn.c_proj.bias": b.c_proj_b,
                p + "ln_2.weight": b.ln_2.weight, p + "ln_2.bias": b.ln_2.bias,
                p + "mlp.c_fc.weight": b.c_fc_w, p + "mlp.c_fc.bias": b.c_fc_b,
                p + "mlp.c_proj.weight": b.mlp_proj_w, p + "mlp.c_proj.bias": b.mlp_proj_b,
            })
        sd["transformer.ln_f.weight"] = self.ln_f.weight
        sd["transformer.ln_f.bias"] = self.ln_f.bias
        return {k: v.detach().contiguous().float() for k, v in sd.items()}


def write_safetensors(path, tensors):
    """safetensors (FORMAT.md §3): u64 header length, JSON header (space-padded to 8), raw f32 data."""
    header, offset = {}, 0
    names = sorted(tensors)
    for n in names:
        nbytes = tensors[n].numel() * 4
        header[n] = {"dtype": "F32", "shape": list(tensors[n].shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - (8 + len(hb)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for n in names:
            f.write(tensors[n].numpy().astype("<f4").tobytes())


def export_with_cache(model, out, vocab, layers, kv_heads, head_dim, logits_seq_axis):
    """ONNX export of a decoder taking (input_ids, past k/v per layer) and returning (logits, present k/v),
    with dynamic batch/sequence/cache axes; plus reference.json: the last-position logits of prompt 0..7."""
    ids = torch.randint(0, vocab, (1, 3))
    past = [torch.zeros(1, kv_heads, 2, head_dim) for _ in range(2 * layers)]
    in_names, out_names = ["input_ids"], ["logits"]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"} if logits_seq_axis else {0: "batch"}}
    for i in range(layers):
        for kv in ("key", "value"):
            in_names.append(f"past_key_values.{i}.{kv}")
            out_names.append(f"present.{i}.{kv}")
            axes[in_names[-1]] = {0: "batch", 2: "past"}
            axes[out_names[-1]] = {0: "batch", 2: "total"}
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, *past), os.path.join(out, "model.onnx"), input_names=in_names, output_names=out_names,
            dynamic_axes=axes, opset_version=14, do_constant_folding=True,
        )
        ref_ids = torch.arange(8).unsqueeze(0) % vocab
        empty = [torch.zeros(1, kv_heads, 0, head_dim) for _ in range(2 * layers)]
        logits = model(ref_ids, *empty)[0][0, -1]
        with open(os.path.join(out, "reference.json"), "w") as f:
            json.dump({"input_ids": ref_ids[0].tolist(), "last_logits_head": logits[:16].tolist(),
                       "argmax": int(logits.argmax())}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int, default=50257)
    ap.add_argument("--n-positions", type=int, default=1024)
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-head", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--logits", choices=["last", "all"], default="last")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    E, H, L = a.n_embd, a.n_head, a.n_layer
    model = GPT2(a.vocab_size, a.n_positions, E, L, H, 4 * E, a.logits == "last").eval()
    # non-trivial LayerNorm parameters and biases
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.02)
    os.makedirs(a.out, exist_ok=True)
    config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": a.vocab_size,
        "n_positions": a.n_positions, "n_ctx": a.n_positions, "n_embd": E, "n_layer": L, "n_head": H,
        "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True, "bos_token_id": a.vocab_size - 1, "eos_token_id": a.vocab_size - 1,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    write_safetensors(os.path.join(a.out, "model.safetensors"), model.hf_state_dict())

    export_with_cache(model, a.out, a.vocab_size, L, H, E // H, logits_seq_axis=a.logits == "all")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
