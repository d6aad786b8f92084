#!/usr/bin/env python3
"""A real PyTorch training hook for CaliFusion.

Reads a safetensors model (a multinomial logistic regression: "weight" [C, F] and "bias" [C],
float32 — the tensors califusiond's built-in trainer uses), trains it with SGD on a CSV file of
features followed by an integer label (gzip allowed), and writes the update as safetensors with
the sample count in the metadata key "samples", which is how califusiond's exec hook reads it.

    python3 Model.py --model IN.safetensors --data DATA.csv[.gz] --out OUT.safetensors \
        [--config ROUND.json] [--epochs 5] [--batch 32] [--lr 0.5] [--scale S] [--prox-mu MU] \
        [--holdout 0.1]

Every setting is taken from, in order: its flag, the round's {config} file (califusiond writes it:
epochs, batch_size, learning_rate, feature_scale, prox_mu, and a free-form "config" map, where
"holdout" is read), then a default. The feature scale (every feature is divided by it) has one
more source before its default of 1: the model's metadata "califusion.feature_scale". Nothing is
rescaled unless one of them says so.

SGD runs on features standardised by the training rows' own mean and deviation (plus a tenth of
the largest deviation), as the built-in trainer's does; the weights are mapped back, so the update
reads the raw (scaled) features. prox_mu > 0 adds FedProx's proximal term
mu/2 * ||w - w_round||^2 to the loss (Li et al. 2020), measured in the standardised coordinates.

A fraction --holdout of the rows (seeded, so the same rows every round) is kept out of training
and scored; the update's metadata carries "califusion.metric.accuracy" and
"califusion.metric.loss" on it, and "samples" counts only the rows trained on.

safetensors is read and written with the `safetensors` package when it is importable, else with
json + struct (Debian 12 packages no python3-safetensors, so python3-torch alone is enough).
"""
import argparse
import gzip
import json
import math
import struct
import sys

import torch

try:
    from safetensors import safe_open
    from safetensors.torch import save_file
except ImportError:  # Debian 12 has no python3-safetensors: the hand parser below does the job
    safe_open = save_file = None

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8)}
SCALE_KEY = "califusion.feature_scale"
METRIC = "califusion.metric."

# Upper bound on the safetensors header the hand parser reads (the model is the node's own file,
# but a bound costs nothing).
MAX_HEADER = 100 << 20


def read_safetensors(path):
    if safe_open is not None:
        with safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        sys.exit(f"{path}: safetensors header of {n} bytes does not fit the file")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            sys.exit(f"{path}: tensor {name} has dtype {info['dtype']}, only F32 and F64 are read")
        dtype, _ = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).clone()
        tensors[name] = t.reshape(info["shape"])
    return tensors, meta


def write_safetensors(path, tensors, meta):
    meta = {k: str(v) for k, v in meta.items()}
    tensors = {k: v.detach().contiguous().to(torch.float32) for k, v in tensors.items()}
    if save_file is not None:
        save_file(tensors, path, metadata=meta)
        return
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        b = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_csv(path, scale):
    opener = gzip.open if path.endswith(".gz") else open
    xs, ys = [], []
    with opener(path, "rt") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            cols = line.split(",")
            xs.append([float(c) / scale for c in cols[:-1]])
            ys.append(int(cols[-1]))
    return torch.tensor(xs, dtype=torch.float32), torch.tensor(ys, dtype=torch.long)


def read_round_config(path):
    if not path:
        return {}
    with open(path) as f:
        rc = json.load(f)
    if not isinstance(rc, dict):
        sys.exit(f"{path}: the round config is not a JSON object")
    return rc


def pick(flag, rc, key, default, kind):
    """The flag if given, else the round config's positive value, else the default."""
    if flag is not None:
        return kind(flag)
    v = rc.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
        return kind(v)
    return default


def positive(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and math.isfinite(v) else None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="the round's configuration (califusiond's {config})")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--scale", type=float, help="divide every feature by this (default: the round config's feature_scale, else the model's metadata, else 1)")
    p.add_argument("--prox-mu", type=float, help="FedProx proximal coefficient (default: the round config's prox_mu, else 0)")
    p.add_argument("--holdout", type=float, help="fraction of rows scored, not trained on (default: config.holdout, else 0.1)")
    a = p.parse_args()

    rc = read_round_config(a.config)
    extra = rc.get("config") if isinstance(rc.get("config"), dict) else {}
    tensors, meta = read_safetensors(a.model)
    epochs = pick(a.epochs, rc, "epochs", 5, int)
    batch = pick(a.batch, rc, "batch_size", 32, int)
    lr = pick(a.lr, rc, "learning_rate", 0.5, float)
    scale = a.scale if a.scale is not None else positive(rc.get("feature_scale")) or positive(meta.get(SCALE_KEY)) or 1.0
    mu = a.prox_mu if a.prox_mu is not None else float(rc.get("prox_mu") or 0)
    holdout = a.holdout if a.holdout is not None else float(extra.get("holdout", 0.1))
    if not 0 <= holdout < 1 or mu < 0 or not scale > 0:
        sys.exit(f"holdout {holdout} must be in [0, 1), prox_mu {mu} ≥ 0, scale {scale} > 0")

    w_in = tensors["weight"].clone().to(torch.float32)
    b_in = tensors["bias"].clone().to(torch.float32)
    x, y = read_csv(a.data, scale)
    if x.shape[1] != w_in.shape[1]:
        sys.exit(f"data has {x.shape[1]} features, the model takes {w_in.shape[1]}")
    # The held-out rows are the same every round (seeded), so the metric tracks the model.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(17))
    n_eval = int(len(x) * holdout) if len(x) > 1 else 0
    ev, tr = perm[:n_eval], perm[n_eval:]
    xt, yt = x[tr], y[tr]
    # SGD runs on standardised features, as the built-in trainer's (node/fl/precondition.go):
    # z = (x - mean) / s with s the deviation plus a tenth of the largest one, and the model
    # rewritten for z (w' = w * s, b' = b + w @ mean); it is mapped back below.
    mean = xt.mean(0)
    dev = xt.std(0, unbiased=False) if len(xt) > 1 else torch.zeros(xt.shape[1])
    s = dev + 0.1 * dev.max() if dev.max() > 0 else torch.ones_like(dev)
    zt = (xt - mean) / s
    weight = (w_in * s).requires_grad_(True)
    bias = (b_in + w_in @ mean).requires_grad_(True)
    w0, b0 = weight.detach().clone(), bias.detach().clone()
    opt = torch.optim.SGD([weight, bias], lr=lr)
    torch.manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(zt[idx] @ weight.T + bias, yt[idx])
            if mu > 0:
                loss = loss + mu / 2 * ((weight - w0).pow(2).sum() + (bias - b0).pow(2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
    out_meta = {"samples": len(xt)}
    with torch.no_grad():
        weight = weight / s
        bias = bias - weight @ mean
        acc = ((xt @ weight.T + bias).argmax(1) == yt).float().mean().item()
        out_meta["train_accuracy"] = f"{acc:.4f}"
        msg = f"trained on {len(xt)} samples (epochs {epochs}, batch {batch}, lr {lr}, scale {scale}, prox_mu {mu}), training accuracy {acc:.3f}"
        if n_eval > 0:
            logits = x[ev] @ weight.T + bias
            eacc = (logits.argmax(1) == y[ev]).float().mean().item()
            eloss = torch.nn.functional.cross_entropy(logits, y[ev]).item()
            out_meta[METRIC + "accuracy"] = f"{eacc:.4f}"
            out_meta[METRIC + "loss"] = f"{eloss:.4f}"
            msg += f", held-out accuracy {eacc:.3f} on {n_eval} rows"
    print(msg)
    write_safetensors(a.out, {"weight": weight, "bias": bias}, out_meta)


if __name__ == "__main__":
    main()
