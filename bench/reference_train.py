"""Reference: the seeds' CNN trained with PyTorch on the same MNIST files, for throughput comparison.

Usage: /usr/bin/python3 bench/reference_train.py DATA_DIR [--threads 2] [--epochs 1] [--batch-size 128]
Prints one JSON line: {"images_per_second": ..., "seconds": ..., "images": ..., "torch": ...}.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from mnist_reference import Net, read_idx


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = torch.from_numpy(read_idx(f"{args.data_dir}/train-images-idx3-ubyte", 3).copy()).float().div_(255).unsqueeze(1)
    labels = torch.from_numpy(read_idx(f"{args.data_dir}/train-labels-idx1-ubyte", 1).astype(np.int64))
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(labels))
        for i in range(0, len(labels), args.batch_size):
            index = order[i:i + args.batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images[index]), labels[index])
            loss.backward()
            optimizer.step()
            seen += len(index)
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": seen / seconds, "seconds": seconds, "images": seen,
                      "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
