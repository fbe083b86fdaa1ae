"""Reference: PGD L-inf on the seeds' CNN with PyTorch, reading our safetensors package directly.

Usage: /usr/bin/python3 bench/reference_pgd.py MODEL_DIR DATA_DIR [--images 1000] [--steps 40] [--threads 2]
Prints one JSON line: {"image_steps_per_second": ..., "accuracy": ..., ...}. The weights file is parsed
with the safetensors layout (8-byte length, JSON header, raw little-endian data) and numpy only.
"""
import argparse
import json
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

from mnist_reference import Net, read_idx


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", entry
        begin, end = entry["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[base + begin: base + end], dtype="<f4").reshape(entry["shape"]).copy())
    return tensors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("data_dir")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Net()
    model.load_state_dict(load_safetensors(f"{args.model_dir}/weights.safetensors"))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    images = torch.from_numpy(read_idx(f"{args.data_dir}/t10k-images-idx3-ubyte", 3)[:args.images].copy()).float().div_(255).unsqueeze(1)
    labels = torch.from_numpy(read_idx(f"{args.data_dir}/t10k-labels-idx1-ubyte", 1)[:args.images].astype(np.int64))
    correct = 0
    start = time.perf_counter()
    for i in range(0, len(labels), args.batch_size):
        x, y = images[i:i + args.batch_size], labels[i:i + args.batch_size]
        adv = (x + torch.empty_like(x).uniform_(-args.eps, args.eps)).clamp(0, 1)
        for _ in range(args.steps):
            adv.requires_grad_(True)
            loss = F.cross_entropy(model(adv), y)
            grad, = torch.autograd.grad(loss, adv)
            adv = torch.min(torch.max(adv.detach() + args.alpha * grad.sign(), x - args.eps), x + args.eps).clamp(0, 1)
        with torch.no_grad():
            correct += (model(adv).argmax(1) == y).sum().item()
    seconds = time.perf_counter() - start
    print(json.dumps({"image_steps_per_second": len(labels) * args.steps / seconds, "seconds": seconds, "images": len(labels),
                      "steps": args.steps, "accuracy": correct / len(labels), "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
