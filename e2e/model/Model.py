#!/usr/bin/env python3
"""A real PyTorch training hook for CaliFusion.

Reads a safetensors model (a multinomial logistic regression: "weight" [C, F] and "bias" [C],
float32 — the tensors califusiond's built-in trainer uses), trains it with SGD on a CSV file of
features followed by an integer label (gzip allowed), and writes the update as safetensors with the
sample count in the metadata key "samples", which is how califusiond's exec hook reads it.

    python3 Model.py --model IN.safetensors --data DATA.csv[.gz] --out OUT.safetensors \
        [--epochs 5] [--batch 32] [--lr 0.5] [--scale 16]

safetensors is read and written with json + struct so that only Debian's python3-torch is needed.
"""
import argparse
import gzip
import json
import struct
import sys

import torch

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        dtype, size = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).clone()
        tensors[name] = t.reshape(info["shape"])
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().to(torch.float32)
        b = t.numpy().tobytes() if hasattr(t, "numpy") else bytes(t.untyped_storage())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {k: str(v) for k, v in meta.items()}
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--scale", type=float, default=16.0)
    a = p.parse_args()

    tensors, _ = read_safetensors(a.model)
    weight = tensors["weight"].clone().requires_grad_(True)
    bias = tensors["bias"].clone().requires_grad_(True)
    x, y = read_csv(a.data, a.scale)
    if x.shape[1] != weight.shape[1]:
        sys.exit(f"data has {x.shape[1]} features, the model takes {weight.shape[1]}")
    opt = torch.optim.SGD([weight, bias], lr=a.lr)
    torch.manual_seed(0)
    for _ in range(a.epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), a.batch):
            idx = order[i:i + a.batch]
            loss = torch.nn.functional.cross_entropy(x[idx] @ weight.T + bias, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = ((x @ weight.T + bias).argmax(1) == y).float().mean().item()
    print(f"trained on {len(x)} samples, training accuracy {acc:.3f}")
    write_safetensors(a.out, {"weight": weight, "bias": bias}, {"samples": len(x), "train_accuracy": f"{acc:.4f}"})


if __name__ == "__main__":
    main()
