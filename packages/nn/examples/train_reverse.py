#!/usr/bin/env python3
"""Train the tiny GRU encoder-decoder of examples/rnn-seq2seq.mjs on a toy task: reverse a sequence
of digits. Run manually with Debian's python3-torch (about a minute on one CPU core):

    /usr/bin/python3 packages/nn/examples/train_reverse.py

Writes examples/reverse-gru.safetensors with the state-dict names RNNSeq2Seq loads:
encoder.embedding.weight, encoder.rnn.*, decoder.embedding.weight, decoder.rnn.*, decoder.out.*.
Vocabulary: 0 pad (unused), 1 BOS, 2 EOS, 3..12 the digits 0..9.
"""
import json
import os
import struct

import torch
from torch import nn

V, E, H = 13, 32, 64
BOS, EOS = 1, 2
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reverse-gru.safetensors")


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.rnn = nn.GRU(E, H, batch_first=True)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.rnn = nn.GRU(E, H, batch_first=True)
        self.out = nn.Linear(H, V)


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(self, src, tgt_in):
        _, h = self.encoder.rnn(self.encoder.embedding(src))
        o, _ = self.decoder.rnn(self.decoder.embedding(tgt_in), h)
        return self.decoder.out(o)


def batch(n, length):
    src = torch.randint(3, 13, (n, length))
    tgt = torch.cat([src.flip(1), torch.full((n, 1), EOS)], 1)
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], 1)
    return src, tgt_in, tgt


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in sorted(tensors.items()):
        b = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Seq2Seq()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(1, 6001):
        src, tgt_in, tgt = batch(64, int(torch.randint(3, 8, ()).item()))
        loss = nn.functional.cross_entropy(model(src, tgt_in).reshape(-1, V), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 1000 == 0:
            with torch.no_grad():
                src, tgt_in, tgt = batch(256, 6)
                acc = (model(src, tgt_in).argmax(-1) == tgt).all(1).float().mean().item()
            print(f"step {step} loss {loss.item():.4f} teacher-forced sequence accuracy (len 6) {acc:.3f}")
    write_safetensors(OUT, model.state_dict())
    print("wrote", OUT)


if __name__ == "__main__":
    main()
