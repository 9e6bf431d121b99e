#!/usr/bin/env python3
"""Export the benchmark models of @wasmformer/nn from PyTorch (run manually, not in CI).

For each model this writes, into packages/nn/bench/models/ (or the folder given as argv[1]):
  <name>.onnx               the model, torch.onnx.export at opset 17 (for onnxruntime-web)
  <name>.safetensors        its state dict under PyTorch's names (for @wasmformer/nn)
  <name>.io.safetensors     a random input and PyTorch's output (the benchmark checks both engines)

Models (batch 1, float32, eval mode):
  lstm    nn.LSTM(128, 256, num_layers=2, batch_first=True), x [1, 100, 128] -> output [1, 100, 256]
  gru     nn.GRU  (same sizes)
  mha197  nn.MultiheadAttention(192, 3, batch_first=True), self-attention, x [1, 197, 192]
  mha512  nn.MultiheadAttention(768, 12, batch_first=True), self-attention, x [1, 512, 768]

Needs Debian's python3-torch (1.13): /usr/bin/python3 tools/export-onnx/export.py
"""
import json
import os
import struct
import sys

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "packages", "nn", "bench", "models")


def write_safetensors(path, tensors):
    """The safetensors layout: u64 header length, JSON header (space-padded to 8), data by decreasing size then name."""
    items = sorted(tensors.items(), key=lambda kv: kv[0])
    header, blobs, off = {}, [], 0
    for name, t in items:
        t = t.detach().contiguous().to(torch.float32)
        b = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class SelfAttention(torch.nn.Module):
    """MHA(x, x, x) without the attention weights, as a transformer block calls it."""

    def __init__(self, e, h):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(e, h, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


class Recurrent(torch.nn.Module):
    def __init__(self, cls):
        super().__init__()
        self.rnn = cls(128, 256, num_layers=2, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0]


def export(name, module, x, prefix):
    # Exported in training mode with dropout 0 (the same function as eval): in eval mode PyTorch 1.13
    # routes MultiheadAttention to its fused fast path, aten::_native_multi_head_attention, which
    # has no ONNX symbolic.
    module.train()
    with torch.no_grad():
        y = module(x)
        torch.onnx.export(
            module, (x,), os.path.join(OUT, f"{name}.onnx"), opset_version=17, input_names=["x"], output_names=["y"],
            training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
        )
    sd = {k[len(prefix):]: v for k, v in module.state_dict().items() if k.startswith(prefix)}
    write_safetensors(os.path.join(OUT, f"{name}.safetensors"), sd)
    write_safetensors(os.path.join(OUT, f"{name}.io.safetensors"), {"input.x": x, "expected.y": y})
    print(f"{name}: onnx + {len(sd)} tensors, output {tuple(y.shape)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    export("lstm", Recurrent(torch.nn.LSTM), torch.randn(1, 100, 128), "rnn.")
    export("gru", Recurrent(torch.nn.GRU), torch.randn(1, 100, 128), "rnn.")
    export("mha197", SelfAttention(192, 3), torch.randn(1, 197, 192), "attn.")
    export("mha512", SelfAttention(768, 12), torch.randn(1, 512, 768), "attn.")


if __name__ == "__main__":
    main()
