#!/usr/bin/env python3
"""Reference cases of this package's kinds computed by PyTorch itself (FORMAT.md layout), beyond
../shared/fixtures: odd sizes, length 1, long sequences, bias off, and mask combinations. Run
manually with Debian's python3-torch (1.13); the cases are committed under test/torch-cases/ and run
by test/torch-cases.test.ts.

    /usr/bin/python3 packages/nn/test/torchgen/gen.py

Expected values are PyTorch evaluated in float64 on the float32 weights and inputs, rounded once to
float32 (FORMAT.md §4). Modules keep autograd enabled so that eval-mode fast paths (which return
zeros at padded positions) are not taken.
"""
import json
import math
import os
import shutil
import struct

import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch-cases")
DT = {torch.float32: ("F32", 4), torch.int64: ("I64", 8), torch.bool: ("BOOL", 1)}


def write_safetensors(path, tensors, kind=None):
    items = sorted(tensors.items(), key=lambda kv: (-DT[kv[1].dtype][1], kv[0]))
    header, blobs, off = {}, [], 0
    for name, t in items:
        t = t.detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype][0], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt", **({"kind": kind} if kind else {})}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def f32(t):
    return t.to(torch.float32)


def save(kind, slug, desc, config, model, inputs, expected, params=None, tol=None):
    name = f"{kind}-{slug}"
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    files = {"io": "io.safetensors"}
    if model is not None:
        files["model"] = "model.safetensors"
        write_safetensors(os.path.join(d, "model.safetensors"), {k: f32(v) for k, v in model.items()})
    io = {f"input.{k}": v for k, v in inputs.items() if v is not None}
    io.update({f"expected.{k}": v for k, v in expected.items()})
    write_safetensors(os.path.join(d, "io.safetensors"), io, kind)
    case = {"format_version": 1, "kind": kind, "name": name, "description": desc, "config": config}
    if params:
        case["params"] = params
    case["files"] = files
    case["tolerance"] = tol or {"atol": 1e-4, "rtol": 1e-3}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)


def f64_module(m):
    """The module's f32 weights (rounded from their init) and an f64 copy that computes the expected values."""
    for p in m.parameters():
        p.data = p.data.float()
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    return sd, m.double()


def rnn_case(kind, slug, I, H, L, bidir, bias, B, T, h0, nonlin="tanh"):
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    kw = {"nonlinearity": nonlin} if kind == "rnn" else {}
    m = cls(I, H, num_layers=L, bias=bias, batch_first=True, bidirectional=bidir, **kw)
    sd, m64 = f64_module(m)
    D = 2 if bidir else 1
    x = torch.randn(B, T, I)
    h = torch.randn(L * D, B, H) if h0 else None
    c = torch.randn(L * D, B, H) if (h0 and kind == "lstm") else None
    if kind == "lstm":
        out, (hn, cn) = m64(x.double(), (h.double(), c.double()) if h0 else None)
        exp = {"output": f32(out), "h_n": f32(hn), "c_n": f32(cn)}
    else:
        out, hn = m64(x.double(), h.double() if h0 else None)
        exp = {"output": f32(out), "h_n": f32(hn)}
    cfg = {"input_size": I, "hidden_size": H, "num_layers": L, "bias": bias, "batch_first": True, "dropout": 0.0, "bidirectional": bidir}
    if kind == "rnn":
        cfg["nonlinearity"] = nonlin
    if kind == "lstm":
        cfg["proj_size"] = 0
    save(kind, slug, f"{kind} I={I} H={H} L={L} bidir={bidir} bias={bias} B={B} T={T} h0={h0}", cfg, sd, {"x": x, "h0": h, "c0": c}, exp)


def float_mask(L, S, p=0.25):
    m = torch.randn(L, S)
    m[torch.rand(L, S) < p] = -math.inf
    m[:, 0] = torch.randn(L)  # never a fully blocked row
    return m


def bool_block(shape, p=0.3):
    m = torch.rand(*shape) < p
    m[..., 0] = False
    return m


def mha_case(slug, E, H, B, L, S, attn, kpm, causal=False):
    m = nn.MultiheadAttention(E, H, batch_first=True)
    sd, m64 = f64_module(m)
    q = torch.randn(B, L, E)
    k = q if L == S and causal else torch.randn(B, S, E)
    v = q if L == S and causal else torch.randn(B, S, E)
    am = None
    if causal:
        am = torch.triu(torch.ones(L, S, dtype=torch.bool), 1)
    elif attn == "bool":
        am = bool_block((L, S))
    elif attn == "f32":
        am = float_mask(L, S)
    kp = bool_block((B, S)) if kpm else None
    o, w = m64(q.double(), k.double(), v.double(), key_padding_mask=kp, attn_mask=am.double() if am is not None and am.dtype != torch.bool else am,
               need_weights=True, average_attn_weights=False)
    cfg = {"embed_dim": E, "num_heads": H, "dropout": 0.0, "bias": True, "add_bias_kv": False, "add_zero_attn": False, "kdim": E, "vdim": E,
           "batch_first": True, "self_attention": k is q, "need_weights": True, "average_attn_weights": False}
    save("mha", slug, f"MHA E={E} H={H} B={B} L={L} S={S} attn={attn} kpm={kpm} causal={causal}", cfg, sd,
         {"query": q, "key": k.clone(), "value": v.clone(), "attn_mask": am, "key_padding_mask": kp}, {"attn_output": f32(o), "attn_weights": f32(w)})


def sdpa_case(slug, lead, L, S, dk, dv, masked):
    q, k, v = torch.randn(*lead, L, dk) * 2, torch.randn(*lead, S, dk) * 2, torch.randn(*lead, S, dv)
    mask = None
    s = q.double() @ k.double().transpose(-2, -1) / math.sqrt(dk)
    if masked:
        mask = ~bool_block((*lead, L, S), 0.4)  # true = may attend
        s = s.masked_fill(~mask, -math.inf)
    w = torch.softmax(s, -1)
    save("sdpa", slug, f"sdpa lead={lead} L={L} S={S} dk={dk} dv={dv} masked={masked}", {"scale": "1/sqrt(d_k)", "mask_true_means": "attend"}, None,
         {"q": q, "k": k, "v": v, "mask": mask}, {"weights": f32(w), "output": f32(w @ v.double())})


def pe_table(max_len, d, base=10000.0):
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    j = torch.arange(d)
    w = torch.exp(-2 * (j // 2).double() * math.log(base) / d)
    ang = pos * w
    return torch.where(j % 2 == 0, torch.sin(ang), torch.cos(ang))


def layer_cfg(d, nh, F, act, nf):
    return {"d_model": d, "nhead": nh, "dim_feedforward": F, "dropout": 0.0, "activation": act, "layer_norm_eps": 1e-5, "batch_first": True, "norm_first": nf}


def causal_f32(T):
    return torch.triu(torch.full((T, T), -math.inf), 1)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    torch.manual_seed(1234)
    rnn_case("rnn", "tanh_3layer_bidir_nobias_h0", 3, 5, 3, True, False, 2, 7, True)
    rnn_case("rnn", "relu_T1_b3", 4, 3, 1, False, True, 3, 1, False, "relu")
    rnn_case("lstm", "nobias_bidir_T1_h0c0", 5, 4, 2, True, False, 1, 1, True)
    rnn_case("lstm", "long_T300", 6, 7, 1, False, True, 2, 300, False)
    rnn_case("gru", "nobias_2layer_h0_b4", 2, 9, 2, False, False, 4, 5, True)
    rnn_case("gru", "bidir_long_T257", 3, 4, 1, True, True, 1, 257, False)

    mha_case("float_mask_kpm", 12, 4, 2, 5, 6, "f32", True)
    mha_case("bool_mask_L1S1", 6, 3, 1, 1, 1, "bool", False)
    mha_case("self_causal_kpm_odd", 10, 5, 3, 8, 8, None, True, causal=True)
    mha_case("cross_long_S300", 8, 2, 1, 3, 300, "bool", True)

    sdpa_case("4d_masked", (2, 3), 5, 4, 7, 3, True)
    sdpa_case("3d_L1", (4,), 1, 6, 5, 2, False)

    for L, d in [(1000, 33), (7, 1)]:
        save("positional_encoding", f"{L}x{d}", f"sinusoidal table {L}x{d}", {"max_len": L, "d_model": d, "base": 10000.0}, None, {},
             {"pe": f32(pe_table(L, d))}, tol={"atol": 1e-3 if L > 512 else 1e-4, "rtol": 1e-3})

    # encoder layer: float src_mask + padding, gelu, post-norm, odd sizes
    d, nh, F = 12, 3, 20
    m = nn.TransformerEncoderLayer(d, nh, F, 0.0, "gelu", batch_first=True, norm_first=False)
    sd, m64 = f64_module(m)
    src, sm, kp = torch.randn(2, 7, d), float_mask(7, 7), bool_block((2, 7))
    out = m64(src.double(), src_mask=sm.double(), src_key_padding_mask=kp)
    save("transformer_encoder_layer", "gelu_postnorm_f32mask_padding", "encoder layer, float src_mask and key padding", layer_cfg(d, nh, F, "gelu", False), sd,
         {"src": src, "src_mask": sm, "src_key_padding_mask": kp}, {"output": f32(out)})
    # encoder layer, length 1, pre-norm relu, bool mask
    m = nn.TransformerEncoderLayer(d, nh, F, 0.0, "relu", batch_first=True, norm_first=True)
    sd, m64 = f64_module(m)
    src = torch.randn(3, 1, d)
    out = m64(src.double(), src_mask=torch.zeros(1, 1, dtype=torch.bool))
    save("transformer_encoder_layer", "relu_prenorm_len1", "encoder layer, S=1, bool mask", layer_cfg(d, nh, F, "relu", True), sd,
         {"src": src, "src_mask": torch.zeros(1, 1, dtype=torch.bool)}, {"output": f32(out)})

    # decoder layer with all four masks: bool causal tgt_mask, float memory_mask, both paddings
    d, nh, F = 10, 2, 14
    m = nn.TransformerDecoderLayer(d, nh, F, 0.0, "relu", batch_first=True, norm_first=True)
    sd, m64 = f64_module(m)
    T, S = 5, 6
    tgt, mem = torch.randn(2, T, d), torch.randn(2, S, d)
    tm = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    mm, tk, mk = float_mask(T, S), bool_block((2, T)), bool_block((2, S))
    out = m64(tgt.double(), mem.double(), tgt_mask=tm, memory_mask=mm.double(), tgt_key_padding_mask=tk, memory_key_padding_mask=mk)
    save("transformer_decoder_layer", "relu_prenorm_all_masks", "decoder layer, bool causal tgt_mask, float memory_mask, both paddings", layer_cfg(d, nh, F, "relu", True), sd,
         {"tgt": tgt, "memory": mem, "tgt_mask": tm, "memory_mask": mm, "tgt_key_padding_mask": tk, "memory_key_padding_mask": mk}, {"output": f32(out)})

    # nn.Transformer 2+2, gelu post-norm, float src_mask, bool memory_mask, float causal tgt_mask, paddings
    d, nh, F = 12, 4, 24
    m = nn.Transformer(d, nh, 2, 2, F, 0.0, "gelu", batch_first=True, norm_first=False)
    sd, m64 = f64_module(m)
    S, T = 6, 4
    src, tgt = torch.randn(2, S, d), torch.randn(2, T, d)
    sm, mm, skp, tkp = float_mask(S, S), bool_block((T, S)), bool_block((2, S)), bool_block((2, T))
    tm = causal_f32(T)
    memory = m64.encoder(src.double(), mask=sm.double(), src_key_padding_mask=skp)
    out = m64.decoder(tgt.double(), memory, tgt_mask=tm.double(), memory_mask=mm, tgt_key_padding_mask=tkp, memory_key_padding_mask=skp)
    cfg = {**layer_cfg(d, nh, F, "gelu", False), "num_encoder_layers": 2, "num_decoder_layers": 2, "memory_key_padding_mask": "same as src_key_padding_mask"}
    save("transformer", "gelu_postnorm_mixed_masks", "nn.Transformer 2+2 with float src_mask, bool memory_mask, float causal tgt_mask, paddings", cfg, sd,
         {"src": src, "tgt": tgt, "src_mask": sm, "tgt_mask": tm, "memory_mask": mm, "src_key_padding_mask": skp, "tgt_key_padding_mask": tkp},
         {"memory": f32(memory), "output": f32(out)})

    # seq2seq with target padding, batch 3
    seq2seq_case()


class TokEmb(nn.Module):
    def __init__(self, v, d):
        super().__init__()
        self.embedding = nn.Embedding(v, d)


class Seq2Seq(nn.Module):
    def __init__(self, vs, vt, d, nh, ne, nd, F, act, nf):
        super().__init__()
        self.transformer = nn.Transformer(d, nh, ne, nd, F, 0.0, act, batch_first=True, norm_first=nf)
        self.generator = nn.Linear(d, vt)
        self.src_tok_emb = TokEmb(vs, d)
        self.tgt_tok_emb = TokEmb(vt, d)
        self.d = d

    def embed(self, emb, ids):
        return emb.embedding(ids) * math.sqrt(self.d) + pe_table(ids.shape[1], self.d).to(emb.embedding.weight.dtype)

    def encode(self, src, skp):
        return self.transformer.encoder(self.embed(self.src_tok_emb, src), src_key_padding_mask=skp)

    def decode(self, ys, memory, skp, tkp=None):
        T = ys.shape[1]
        tm = torch.triu(torch.full((T, T), -math.inf, dtype=memory.dtype), 1)
        return self.transformer.decoder(self.embed(self.tgt_tok_emb, ys), memory, tgt_mask=tm, tgt_key_padding_mask=tkp, memory_key_padding_mask=skp)


def seq2seq_case():
    vs, vt, d, nh, F, N = 11, 9, 16, 4, 20, 7
    m = Seq2Seq(vs, vt, d, nh, 1, 2, F, "relu", False)
    sd, m64 = f64_module(m)
    src = torch.tensor([[3, 5, 7, 2, 8, 0], [4, 4, 1, 6, 2, 3], [5, 9, 0, 0, 0, 0]])
    tgt = torch.tensor([[1, 2, 4, 3, 0], [1, 6, 2, 0, 0], [1, 8, 7, 5, 2]])
    skp, tkp = src == 0, tgt == 0
    memory = m64.encode(src, skp)
    logits = m64.generator(m64.decode(tgt, memory, skp, tkp))
    ys = torch.ones(3, 1, dtype=torch.long)
    steps, margin = [], math.inf
    for _ in range(N):
        l = m64.generator(m64.decode(ys, memory, skp)[:, -1])
        top = l.topk(2, -1).values
        margin = min(margin, (top[:, 0] - top[:, 1]).min().item())
        steps.append(l)
        ys = torch.cat([ys, l.argmax(-1, keepdim=True)], 1)
    cfg = {"src_vocab_size": vs, "tgt_vocab_size": vt, **layer_cfg(d, nh, F, "relu", False), "num_encoder_layers": 1, "num_decoder_layers": 2,
           "embedding_scale": "sqrt(d_model)", "positional_encoding": "sinusoidal (positional_encoding kind), base 10000", "bos_id": 1, "pad_id": 0}
    save("transformer_seq2seq", "tgt_padding_b3_greedy7", "seq2seq 1+2 layers, batch 3, source and target padding, 7 greedy steps", cfg, sd,
         {"src_ids": src, "tgt_ids": tgt, "src_key_padding_mask": skp, "tgt_key_padding_mask": tkp},
         {"logits": f32(logits), "greedy_ids": ys[:, 1:], "greedy_step_logits": f32(torch.stack(steps, 1))},
         params={"max_new_tokens": N, "greedy_min_top2_margin": round(margin, 4)})


if __name__ == "__main__":
    main()
