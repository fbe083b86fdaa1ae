"""Reference: the seeds' CNN trained with PyTorch on the same MNIST files, for throughput comparison.

Usage: /usr/bin/python3 bench/reference_train.py DATA_DIR [--threads 2] [--epochs 1] [--batch-size 128]
Prints one JSON line: {"images_per_second": ..., "seconds": ..., "images": ..., "torch": ...}.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path, rank):
    with open(path, "rb") as f:
        data = f.read()
    assert data[0] == 0 and data[1] == 0 and data[2] == 0x08 and data[3] == rank, path
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(9216, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = (x - 0.1307) / 0.3081
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


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
