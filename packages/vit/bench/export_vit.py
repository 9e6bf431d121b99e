"""Export a ViT (HF ViTForImageClassification computation) with random weights to ONNX and safetensors.

Used by vit-bench.mjs: onnxruntime-web runs the .onnx, @wasmformer/vit the .safetensors (same
weights, HF names), and PyTorch's own single-thread latency is recorded as a reference.

Needs Debian's python3-torch (1.13) and numpy only (no transformers, no onnx package):
    /usr/bin/python3 bench/export_vit.py tiny [out-dir]
The default out-dir is $VIT_BENCH_DIR or <tmp>/wasmformer-vit-bench (outside the repo: the ONNX
files are large, and the linters would read the JSON).
"""
import json
import math
import os
import struct
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

SIZES = {
    # name: (hidden, layers, heads, intermediate)
    "tiny": (192, 12, 3, 768),
    "small": (384, 12, 6, 1536),
    "base": (768, 12, 12, 3072),
}


class Layer(nn.Module):
    def __init__(self, D, H, I, eps):
        super().__init__()
        self.H = H
        self.layernorm_before = nn.LayerNorm(D, eps=eps)
        self.query = nn.Linear(D, D)
        self.key = nn.Linear(D, D)
        self.value = nn.Linear(D, D)
        self.out = nn.Linear(D, D)
        self.layernorm_after = nn.LayerNorm(D, eps=eps)
        self.fc1 = nn.Linear(D, I)
        self.fc2 = nn.Linear(I, D)

    def forward(self, h):
        B, T, D = h.shape
        hs = D // self.H
        x = self.layernorm_before(h)
        q = self.query(x).view(B, T, self.H, hs).transpose(1, 2)
        k = self.key(x).view(B, T, self.H, hs).transpose(1, 2)
        v = self.value(x).view(B, T, self.H, hs).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs), dim=-1)
        ctx = (a @ v).transpose(1, 2).reshape(B, T, D)
        h = h + self.out(ctx)
        return h + self.fc2(nn.functional.gelu(self.fc1(self.layernorm_after(h))))


class ViT(nn.Module):
    def __init__(self, D, L, H, I, p=16, image=224, labels=1000, eps=1e-12):
        super().__init__()
        g = image // p
        self.cls_token = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, g * g + 1, D) * 0.02)
        self.proj = nn.Conv2d(3, D, p, stride=p)
        self.layers = nn.ModuleList([Layer(D, H, I, eps) for _ in range(L)])
        self.layernorm = nn.LayerNorm(D, eps=eps)
        self.classifier = nn.Linear(D, labels)

    def forward(self, x):
        B = x.shape[0]
        patches = self.proj(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls_token.expand(B, -1, -1), patches], dim=1) + self.pos
        for layer in self.layers:
            h = layer(h)
        h = self.layernorm(h)
        return self.classifier(h[:, 0])

    def hf_state_dict(self):
        sd = {
            "vit.embeddings.cls_token": self.cls_token,
            "vit.embeddings.position_embeddings": self.pos,
            "vit.embeddings.patch_embeddings.projection.weight": self.proj.weight,
            "vit.embeddings.patch_embeddings.projection.bias": self.proj.bias,
            "vit.layernorm.weight": self.layernorm.weight,
            "vit.layernorm.bias": self.layernorm.bias,
            "classifier.weight": self.classifier.weight,
            "classifier.bias": self.classifier.bias,
        }
        for i, l in enumerate(self.layers):
            P = f"vit.encoder.layer.{i}."
            for ours, theirs in [
                ("layernorm_before", l.layernorm_before),
                ("attention.attention.query", l.query),
                ("attention.attention.key", l.key),
                ("attention.attention.value", l.value),
                ("attention.output.dense", l.out),
                ("layernorm_after", l.layernorm_after),
                ("intermediate.dense", l.fc1),
                ("output.dense", l.fc2),
            ]:
                sd[P + ours + ".weight"] = theirs.weight
                sd[P + ours + ".bias"] = theirs.bias
        return {k: v.detach().contiguous().numpy().astype(np.float32) for k, v in sd.items()}


def write_safetensors(path, tensors):
    header = {}
    off = 0
    names = sorted(tensors)
    for n in names:
        a = tensors[n]
        header[n] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n in names:
            f.write(tensors[n].tobytes())


def main():
    size = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    default = os.environ.get("VIT_BENCH_DIR") or os.path.join(tempfile.gettempdir(), "wasmformer-vit-bench")
    out = sys.argv[2] if len(sys.argv) > 2 else default
    os.makedirs(out, exist_ok=True)
    D, L, H, I = SIZES[size]
    torch.manual_seed(0)
    m = ViT(D, L, H, I).eval()
    with torch.no_grad():  # realistic scales: LayerNorm near identity, small linear weights
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                nn.init.trunc_normal_(mod.weight, std=0.02)
                nn.init.normal_(mod.bias, std=0.02)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    torch.onnx.export(m, (x,), f"{out}/vit-{size}.onnx", input_names=["pixel_values"], output_names=["logits"], opset_version=17)
    write_safetensors(f"{out}/vit-{size}.safetensors", m.hf_state_dict())
    config = {
        "architectures": ["ViTForImageClassification"],
        "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H, "intermediate_size": I,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16, "num_channels": 3,
        "qkv_bias": True, "id2label": {str(i): f"LABEL_{i}" for i in range(1000)}, "model_type": "vit",
    }
    with open(f"{out}/vit-{size}.config.json", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    x.numpy().tofile(f"{out}/vit-{size}.input.f32")
    torch.set_num_threads(1)
    with torch.no_grad():
        logits = m(x)
        logits.numpy().astype(np.float32).tofile(f"{out}/vit-{size}.logits.f32")
        for _ in range(3):
            m(x)
        ts = []
        for _ in range(10):
            t0 = time.perf_counter()
            m(x)
            ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    res = {"size": size, "torch": torch.__version__, "threads": 1, "median_ms": ts[len(ts) // 2], "min_ms": ts[0]}
    with open(f"{out}/vit-{size}.torch.json", "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
