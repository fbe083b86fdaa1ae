"""Reference: L-inf attacks on the seeds' CNN with PyTorch, reading our safetensors package directly.

Usage: /usr/bin/python3 bench/reference_pgd.py MODEL_DIR DATA_DIR [--attack pgd|apgd-ce|apgd-t|square] [--images 1000]
       [--steps 40] [--targets 9] [--queries 5000] [--threads 2]
Prints one JSON line: {"image_steps_per_second": ..., "accuracy": ..., ...}, where an image-step is one forward pass of one
image (with its backward pass for the gradient attacks; a query for Square). The weights file is parsed with the safetensors
layout (8-byte length, JSON header, raw little-endian data) and numpy only. APGD follows Croce & Hein (2020) as AutoAttack's
autopgd_base.py does (momentum 0.75, step 2 eps halved at the checkpoints p_j); Square follows its square.py (p_init 0.8,
stripes, the same p schedule). Both are written out here so the timing compares like with like.
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


class Counter:
    def __init__(self, model):
        self.model, self.images = model, 0

    def __call__(self, x):
        self.images += x.shape[0]
        return self.model(x)


def dlr(logits, y, target=None):
    z, _ = logits.sort(1)
    zy = logits.gather(1, y[:, None])[:, 0]
    if target is None:
        top_is_y = (logits.argmax(1) == y).float()
        other = z[:, -2] * top_is_y + z[:, -1] * (1 - top_is_y)
        return -(zy - other) / (z[:, -1] - z[:, -3] + 1e-12)
    zt = logits.gather(1, target[:, None])[:, 0]
    return -(zy - zt) / (z[:, -1] - 0.5 * (z[:, -3] + z[:, -4]) + 1e-12)


def checkpoints(steps):
    result, interval, position = [], max(int(0.22 * steps), 1), 0
    decrease, minimum = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    position = interval
    while position <= steps:
        result.append(position)
        interval = max(interval - decrease, minimum)
        position += interval
    return result


def apgd(model, x, y, eps, steps, target=None):
    loss_of = (lambda logits: F.cross_entropy(logits, y, reduction="none")) if target is None and not apgd.use_dlr else (lambda logits: dlr(logits, y, target))

    def loss_grad(adv):
        adv = adv.clone().requires_grad_(True)
        logits = model(adv)
        loss = loss_of(logits)
        grad, = torch.autograd.grad(loss.sum(), adv)
        return logits.detach(), loss.detach(), grad.detach()

    t = 2 * torch.rand_like(x) - 1
    adv = (x + eps * t / t.flatten(1).abs().amax(1).view(-1, 1, 1, 1)).clamp(0, 1)
    logits, loss, grad = loss_grad(adv)
    broken = logits.argmax(1) != y
    best_adv, best, best_grad, best_loss = adv.clone(), adv.clone(), grad.clone(), loss.clone()
    step = torch.full((len(x), 1, 1, 1), 2 * eps)
    previous, last_loss, increases = adv.clone(), loss.clone(), torch.zeros(len(x))
    reduced, loss_at_check = torch.ones(len(x), dtype=torch.bool), best_loss.clone()
    marks, last_mark = set(checkpoints(steps)), 0

    def project(z):
        return torch.min(torch.max(z, x - eps), x + eps).clamp(0, 1)

    for i in range(steps):
        momentum = 1.0 if i == 0 else 0.75
        z = project(adv + step * grad.sign())
        adv, previous = project(adv + momentum * (z - adv) + (1 - momentum) * (adv - previous)), adv
        logits, loss, grad = loss_grad(adv)
        wrong = logits.argmax(1) != y
        best_adv[wrong] = adv[wrong]
        broken |= wrong
        increases += (loss > last_loss).float()
        last_loss = loss
        better = loss > best_loss
        best[better], best_grad[better], best_loss[better] = adv[better], grad[better], loss[better]
        if i + 1 in marks:
            since = max(1, i + 1 - last_mark)
            reduce = (increases <= 0.75 * since) | (~reduced & (loss_at_check >= best_loss))
            reduced, loss_at_check, increases, last_mark = reduce, best_loss.clone(), torch.zeros(len(x)), i + 1
            step[reduce] /= 2
            adv[reduce], grad[reduce] = best[reduce], best_grad[reduce]
    return torch.where(broken.view(-1, 1, 1, 1), best_adv, best)


apgd.use_dlr = False


def square(model, x, y, eps, queries, p_init=0.8):
    def margin(adv, labels):
        logits = model(adv)
        zy = logits.gather(1, labels[:, None])[:, 0]
        others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
        return zy - others

    n, c, h, w = x.shape
    best = (x + eps * torch.sign(2 * torch.rand(n, c, 1, w) - 1)).clamp(0, 1)
    m = margin(best, y)
    for i in range(queries - 1):
        open_ = (m > 0).nonzero()[:, 0]
        if len(open_) == 0:
            break
        halvings = sum(i > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
        s = min(max(int(round((p_init / 2 ** halvings * h * w) ** 0.5)), 1), h)
        k = len(open_)
        top = torch.randint(0, h - s + 1, (k, 1, 1))
        left = torch.randint(0, w - s + 1, (k, 1, 1))
        rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        mask = ((rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)).unsqueeze(1).float()
        xo = x[open_]
        candidate = best[open_] + mask * 2 * eps * torch.sign(2 * torch.rand(k, c, 1, 1) - 1)
        candidate = torch.min(torch.max(candidate, xo - eps), xo + eps).clamp(0, 1)
        cm = margin(candidate, y[open_])
        better = cm < m[open_]
        best[open_[better]], m[open_[better]] = candidate[better], cm[better]
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("data_dir")
    parser.add_argument("--attack", choices=["pgd", "apgd-ce", "apgd-t", "square"], default="pgd")
    parser.add_argument("--targets", type=int, default=9)
    parser.add_argument("--restarts", type=int, default=1, help="pgd: random restarts; an input counts as broken if any restart breaks it")
    parser.add_argument("--loss", choices=["ce", "margin", "both"], default="ce", help="pgd: cross-entropy, the CW margin, or both (each with every restart)")
    parser.add_argument("--queries", type=int, default=5000)
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
    counted = Counter(model)
    correct = 0
    start = time.perf_counter()
    for i in range(0, len(labels), args.batch_size):
        x, y = images[i:i + args.batch_size], labels[i:i + args.batch_size]
        if args.attack == "pgd":
            adv, open_ = x.clone(), torch.ones(len(x), dtype=torch.bool)
            for loss_name in (["ce", "margin"] if args.loss == "both" else [args.loss]):
                for _ in range(args.restarts):
                    run = (x + torch.empty_like(x).uniform_(-args.eps, args.eps)).clamp(0, 1)
                    for _ in range(args.steps):
                        run.requires_grad_(True)
                        logits = counted(run)
                        if loss_name == "ce":
                            loss = F.cross_entropy(logits, y)
                        else:
                            zy = logits.gather(1, y[:, None])[:, 0]
                            loss = (logits.scatter(1, y[:, None], float("-inf")).amax(1) - zy).sum()
                        grad, = torch.autograd.grad(loss, run)
                        run = torch.min(torch.max(run.detach() + args.alpha * grad.sign(), x - args.eps), x + args.eps).clamp(0, 1)
                    with torch.no_grad():
                        wrong = (model(run).argmax(1) != y) & open_
                    adv[wrong], open_ = run[wrong], open_ & ~wrong
        elif args.attack == "apgd-ce":
            with torch.enable_grad():
                adv = apgd(counted, x, y, args.eps, args.steps)
        elif args.attack == "apgd-t":
            with torch.no_grad():
                ranking = model(x).argsort(1, descending=True)
            adv, open_ = x.clone(), torch.ones(len(x), dtype=torch.bool)
            apgd.use_dlr = True
            for rank in range(1, args.targets + 1):
                idx = open_.nonzero()[:, 0]
                if len(idx) == 0:
                    break
                found = apgd(counted, x[idx], y[idx], args.eps, args.steps, target=ranking[idx, rank])
                with torch.no_grad():
                    wrong = model(found).argmax(1) != y[idx]
                adv[idx[wrong]] = found[wrong]
                open_[idx[wrong]] = False
        else:
            with torch.no_grad():
                adv = square(counted, x, y, args.eps, args.queries)
        with torch.no_grad():
            correct += (model(adv).argmax(1) == y).sum().item()
    seconds = time.perf_counter() - start
    print(json.dumps({"attack": args.attack, "image_steps_per_second": counted.images / seconds, "image_steps": counted.images, "seconds": seconds,
                      "images": len(labels), "steps": args.steps, "accuracy": correct / len(labels), "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
