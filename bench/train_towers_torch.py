"""PyTorch CPU reference for bench/train-towers: ResNet-18 and MobileNetV2 laid out as
src/lib/models/towers/ builds them (global average pooling, a 10-way linear head), trained with
plain SGD on random data; train and inference images/s, CPU seconds per image and peak RSS as JSON.

Run with Debian's /usr/bin/python3 (python3-torch; torchvision is not needed). Exits 3 without torch.
"""
import argparse
import json
import os
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as err:  # the caller skips PyTorch when this exits 3
    print(json.dumps({"error": f"cannot import torch: {err}"}))
    sys.exit(3)


def conv_bn(cin, cout, kernel, stride, eps=1e-5, groups=1):
    # TF 'same' at stride 2 on an even side pads (0, 1) or (1, 1); kernel//2 gives the same output size and work.
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=eps))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3, 1)
        self.short = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.b(F.relu(self.a(x)))
        return F.relu(y + (self.short(x) if self.short is not None else x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 64, 7, 2)
        layers, cin = [], 64
        for stage in range(4):
            for b in range(2):
                cout = 64 * 2**stage
                layers.append(Basic(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.features = cin

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2, 1)
        return self.blocks(x)


def make_divisible(v, divisor=8):
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


class Inverted(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = []
        if t != 1:
            layers += [conv_bn(cin, hidden, 1, 1, 1e-3), nn.ReLU6()]
        layers += [conv_bn(hidden, hidden, 3, stride, 1e-3, groups=hidden), nn.ReLU6(), conv_bn(hidden, cout, 1, 1, 1e-3)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, alpha=1.0):
        super().__init__()
        cin = make_divisible(32 * alpha)
        layers = [conv_bn(3, cin, 3, 2, 1e-3), nn.ReLU6()]
        for t, c, n, s in self.BLOCKS:
            cout = make_divisible(c * alpha)
            for r in range(n):
                layers.append(Inverted(cin, cout, s if r == 0 else 1, t))
                cin = cout
        last = make_divisible(1280 * alpha) if alpha > 1 else 1280
        layers += [conv_bn(cin, last, 1, 1, 1e-3), nn.ReLU6()]
        self.body = nn.Sequential(*layers)
        self.features = last

    def forward(self, x):
        return self.body(x)


class Classifier(nn.Module):
    def __init__(self, tower, classes):
        super().__init__()
        self.tower = tower
        self.head = nn.Linear(tower.features, classes)

    def forward(self, x):
        return self.head(self.tower(x).mean(dim=(2, 3)))


def timed(step, batch, warmup, steps, sync=lambda: None):
    for _ in range(warmup):
        step()
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    sync()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"steps": steps, "seconds": wall, "images_per_s": steps * batch / wall, "cpu_s_per_image": cpu / (steps * batch)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tower", choices=["resnet18", "mobilenetv2", "resnet50"], required=True,
                        help="resnet50: torchvision's, which must be installed")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="0: one per core")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU peer of bench/gpu-check")
    args = parser.parse_args()

    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(0)
    if args.tower == "resnet50":
        import torchvision  # not in Debian's python3-torch; present on the GPU machines

        tower = torchvision.models.resnet50(weights=None)
        tower.features = tower.fc.in_features
        tower.forward = lambda x, t=tower: t.layer4(t.layer3(t.layer2(t.layer1(t.maxpool(t.relu(t.bn1(t.conv1(x))))))))
    else:
        tower = ResNet18() if args.tower == "resnet18" else MobileNetV2()
    device = torch.device(args.device)
    model = Classifier(tower, args.classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    x = torch.rand(args.batch, 3, args.input_size, args.input_size, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def train_step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()

    def infer_step():
        with torch.no_grad():
            model(x)

    model.train()
    train = timed(train_step, args.batch, args.warmup, args.steps, sync)
    model.eval()
    infer = timed(infer_step, args.batch, args.warmup, args.steps, sync)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "train": train,
        "infer": infer,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
