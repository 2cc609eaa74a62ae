"""PyTorch CPU reference for bench/train-cnn: the same small CNN, batch and SGD step, images/s as JSON.

Run with Debian's /usr/bin/python3 (python3-torch). Prints one JSON object on stdout.
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


class SmallCnn(nn.Module):
    """conv-relu x4 (32, 32, 64, 64 filters, 3x3, same padding), downsampling after the 2nd and 4th conv."""

    def __init__(self, variant: str, channels: int = 3, classes: int = 10, filters=(32, 32, 64, 64)):
        super().__init__()
        self.variant = variant
        convs = []
        in_ch = channels
        for index, count in enumerate(filters):
            stride = 2 if (index % 2 == 1 and variant == "stride2") else 1
            # TF 'same' at stride 2 on an even size pads (0, 1); padding=1 gives the same output size.
            convs.append(nn.Conv2d(in_ch, count, 3, stride=stride, padding=1))
            in_ch = count
        self.convs = nn.ModuleList(convs)
        self.classifier = nn.Linear(in_ch, classes)

    def forward(self, x):
        for index, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if index % 2 == 1 and self.variant == "maxpool":
                x = F.max_pool2d(x, 2)
        x = x.mean(dim=(2, 3))
        return self.classifier(x)


def images_per_second(step, batch: int, warmup: int, min_steps: int, min_seconds: float):
    for _ in range(warmup):
        step()
    steps = 0
    start = time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    return {"steps": steps, "seconds": elapsed, "images_per_s": steps * batch / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=["maxpool", "stride2"], required=True)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-steps", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SmallCnn(args.variant)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(args.batch, 3, args.input_size, args.input_size)
    y = torch.randint(0, 10, (args.batch,))

    def train_step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad():
            model(x)

    model.train()
    train = images_per_second(train_step, args.batch, args.warmup, args.min_steps, args.min_seconds)
    model.eval()
    infer = images_per_second(infer_step, args.batch, args.warmup, args.min_steps, args.min_seconds)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "variant": args.variant,
        "batch": args.batch,
        "train": train,
        "infer": infer,
    }))


if __name__ == "__main__":
    main()
