"""Export a BERT encoder with pooler and random weights to ONNX, plus the same weights as a Hugging Face
folder (config.json + model.safetensors), for packages/bert/bench (wasmformer vs onnxruntime-web).
Default shape: all-MiniLM-L6-v2 (384 wide, 6 layers, 12 heads, MLP 1536, vocabulary 30522, 512 positions).

Plain PyTorch with `transformers`' BertModel names and semantics (post-LayerNorm, exact GELU, the
extended attention mask (1 - mask) * finfo(float32).min), so only Debian's python3-torch is needed:

    /usr/bin/python3 tools/export-onnx/export_bert.py --out /tmp/bert-bench

ONNX graph (opset 14): inputs input_ids, attention_mask, token_type_ids int64 [B, T];
outputs last_hidden_state float32 [B, T, D], pooler_output float32 [B, D].
"""
import argparse
import json
import math
import os

import torch
from torch import nn

from export_gpt2 import write_safetensors


class Layer(nn.Module):
    def __init__(self, D, H, I, eps):
        super().__init__()
        self.H = H
        self.query, self.key, self.value = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.attn_out, self.attn_ln = nn.Linear(D, D), nn.LayerNorm(D, eps=eps)
        self.intermediate, self.output, self.out_ln = nn.Linear(D, I), nn.Linear(I, D), nn.LayerNorm(D, eps=eps)

    def forward(self, h, ext):
        B, T, D = h.shape
        H, d = self.H, D // self.H
        split = lambda t: t.view(B, T, H, d).transpose(1, 2)
        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d) + ext, dim=-1)
        a = self.attn_ln(h + self.attn_out((att @ v).transpose(1, 2).reshape(B, T, D)))
        return self.out_ln(a + self.output(nn.functional.gelu(self.intermediate(a))))


class Bert(nn.Module):
    def __init__(self, a):
        super().__init__()
        D = a.hidden
        self.word = nn.Parameter(torch.randn(a.vocab, D) * 0.02)
        self.position = nn.Parameter(torch.randn(a.max_positions, D) * 0.02)
        self.token_type = nn.Parameter(torch.randn(a.type_vocab, D) * 0.02)
        self.ln = nn.LayerNorm(D, eps=a.eps)
        self.layers = nn.ModuleList([Layer(D, a.heads, a.intermediate, a.eps) for _ in range(a.layers)])
        self.pooler = nn.Linear(D, D)

    def forward(self, input_ids, attention_mask, token_type_ids):
        T = input_ids.shape[1]
        h = self.ln(self.word[input_ids] + self.token_type[token_type_ids] + self.position[:T].unsqueeze(0))
        ext = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in self.layers:
            h = layer(h, ext)
        return h, torch.tanh(self.pooler(h[:, 0]))

    def hf_state_dict(self):
        sd = {
            "embeddings.word_embeddings.weight": self.word,
            "embeddings.position_embeddings.weight": self.position,
            "embeddings.token_type_embeddings.weight": self.token_type,
            "embeddings.LayerNorm.weight": self.ln.weight, "embeddings.LayerNorm.bias": self.ln.bias,
            "pooler.dense.weight": self.pooler.weight, "pooler.dense.bias": self.pooler.bias,
        }
        for i, l in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            for n, m in (("attention.self.query", l.query), ("attention.self.key", l.key),
                         ("attention.self.value", l.value), ("attention.output.dense", l.attn_out),
                         ("attention.output.LayerNorm", l.attn_ln), ("intermediate.dense", l.intermediate),
                         ("output.dense", l.output), ("output.LayerNorm", l.out_ln)):
                sd[p + n + ".weight"], sd[p + n + ".bias"] = m.weight, m.bias
        return {"bert." + k: v.detach().contiguous().float() for k, v in sd.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--intermediate", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--max-positions", type=int, default=512)
    ap.add_argument("--type-vocab", type=int, default=2)
    ap.add_argument("--eps", type=float, default=1e-12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = Bert(a).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.02)
    os.makedirs(a.out, exist_ok=True)
    config = {
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": a.vocab, "hidden_size": a.hidden,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "intermediate_size": a.intermediate,
        "hidden_act": "gelu", "layer_norm_eps": a.eps, "max_position_embeddings": a.max_positions,
        "type_vocab_size": a.type_vocab, "position_embedding_type": "absolute", "pad_token_id": 0,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    write_safetensors(os.path.join(a.out, "model.safetensors"), model.hf_state_dict())
    ids = torch.randint(0, a.vocab, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    types = torch.zeros(2, 7, dtype=torch.long)
    dyn = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, mask, types), os.path.join(a.out, "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state", "pooler_output"],
            dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn,
                          "last_hidden_state": dyn, "pooler_output": {0: "batch"}},
            opset_version=14, do_constant_folding=True,
        )
        ref = torch.arange(8).unsqueeze(0) % a.vocab
        h, pooled = model(ref, torch.ones_like(ref), torch.zeros_like(ref))
        with open(os.path.join(a.out, "reference.json"), "w") as f:
            json.dump({"input_ids": ref[0].tolist(), "pooler_head": pooled[0, :16].tolist(),
                       "hidden_head": h[0, -1, :16].tolist()}, f)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
