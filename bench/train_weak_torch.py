"""PyTorch CPU reference for bench/train-weak: the weak tower of src/lib/models/weak-model.ts (stem conv,
one basic residual block per stage, batch norm, global average pooling, dropout, word matrix without bias),
trained with SGD + momentum on a full or sampled softmax over the words. Prints one JSON object on stdout.

Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as err:  # the caller skips PyTorch when this exits 3
    print(json.dumps({"error": f"cannot import torch: {err}"}))
    sys.exit(3)

from train_towers_torch import ResNet18


class ConvBn(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel: int = 3):
        super().__init__()
        # TF 'same' at stride 2 pads (0, 1); padding=k//2 gives the same output size and work.
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(nn.Module):
    """Basic residual block; a 1x1 conv + BN shortcut when the stride or width changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.a = ConvBn(cin, cout, stride)
        self.b = ConvBn(cout, cout, 1)
        self.short = ConvBn(cin, cout, stride, kernel=1) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.b(F.relu(self.a(x)))
        return F.relu(y + (self.short(x) if self.short is not None else x))


class WeakModel(nn.Module):
    def __init__(self, width: int, stages: int, blocks: int, words: int):
        super().__init__()
        self.stem = ConvBn(3, width, 2)
        layers = []
        cin = width
        for stage in range(stages):
            filters = width * 2**stage
            for block in range(blocks):
                layers.append(Block(cin, filters, 2 if stage > 0 and block == 0 else 1))
                cin = filters
        self.blocks = nn.Sequential(*layers)
        self.words = nn.Parameter(torch.randn(words, cin) * 0.01)

    def embed(self, x):
        return self.blocks(F.relu(self.stem(x))).mean(dim=(2, 3))


class ResNet18Weak(nn.Module):
    """The resnet18 tower of train_towers_torch.py (as src/lib/models/towers/resnet.ts builds it)
    with the same word matrix."""

    def __init__(self, words: int):
        super().__init__()
        self.tower = ResNet18()
        self.words = nn.Parameter(torch.randn(words, self.tower.features) * 0.01)

    def embed(self, x):
        return self.tower(x).mean(dim=(2, 3))


def images_per_second(step, batch: int, warmup: int, min_steps: int, min_seconds: float):
    for _ in range(warmup):
        step()
    steps = 0
    cpu = time.process_time()
    start = time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    return {"steps": steps, "seconds": elapsed, "images_per_s": steps * batch / elapsed, "cpu_s_per_image": (time.process_time() - cpu) / (steps * batch)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--tower", choices=["small", "resnet18"], default="small")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--words", type=int, default=500)
    parser.add_argument("--loss", choices=["full", "sampled"], default="sampled")
    parser.add_argument("--negatives", type=int, default=50)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ResNet18Weak(args.words) if args.tower == "resnet18" else WeakModel(args.width, args.stages, args.blocks, args.words)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    x = torch.rand(args.batch, 3, args.input_size, args.input_size)
    positives = torch.randint(0, args.words, (args.batch,))
    # Row i: the positive first, then negatives (the loss only needs the shapes and the gather).
    candidates = torch.randint(0, args.words, (args.batch, 1 + args.negatives))
    candidates[:, 0] = positives
    zeros = torch.zeros(args.batch, dtype=torch.long)

    def train_step():
        optimizer.zero_grad()
        z = F.dropout(model.embed(x), p=args.dropout, training=True)
        if args.loss == "full":
            loss = F.cross_entropy(z @ model.words.t(), positives)
        else:
            scores = torch.einsum("bd,bnd->bn", z, model.words[candidates])
            loss = F.cross_entropy(scores, zeros)
        loss.backward()
        optimizer.step()
        return loss.item()

    def embed_step():
        with torch.no_grad():
            model.embed(x)

    model.train()
    train = images_per_second(train_step, args.batch, args.warmup, args.min_steps, args.min_seconds)
    model.eval()
    infer = images_per_second(embed_step, args.batch, args.warmup, args.min_steps, args.min_seconds)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "train": train, "infer": infer}))


if __name__ == "__main__":
    main()
