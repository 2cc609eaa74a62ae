"""PyTorch CPU inference peer for bench/onnx and bench/rise: the towers of src/lib/models/towers/
(small from train_weak_torch.py; ResNet-18 and MobileNetV2 from train_towers_torch.py, not written
again here), eval mode, torch.no_grad, one thread per core unless --threads says otherwise.

Two modes, one JSON object on stdout:
  --images LIST.ndjson  end to end as a PyTorch user writes it: PIL decode, resize so both sides reach
                        1.125 x the input side (bilinear), centre crop, /255, forward in batches of
                        --batch; decode and forward seconds are timed separately (the loop is serial).
  otherwise             --passes plain forward passes (at least --min-seconds) on random input in
                        batches of --batch: the floor of RISE, or a forward-only throughput.

Run with Debian's /usr/bin/python3 (python3-torch; python3-pil for --images). Exits 3 without torch.
"""
import argparse
import json
import os
import sys
import time

from train_towers_torch import Classifier, MobileNetV2, ResNet18  # exits 3 without torch
from train_weak_torch import WeakModel
import torch


class Pooled(torch.nn.Module):
    """tower -> global average pooling: what `atelier embed --layer embedding` writes at --projection 0."""

    def __init__(self, tower):
        super().__init__()
        self.tower = tower

    def forward(self, x):
        return self.tower(x).mean(dim=(2, 3))


class SmallWeak(torch.nn.Module):
    """The small weak tower with its word matrix (scores, as `atelier rise` runs it) or without."""

    def __init__(self, width, stages, blocks, words, scores):
        super().__init__()
        self.model = WeakModel(width, stages, blocks, words)
        self.scores = scores

    def forward(self, x):
        z = self.model.embed(x)
        return z @ self.model.words.t() if self.scores else z


def build(args):
    if args.tower == "small":
        return SmallWeak(args.width, args.stages, args.blocks, args.words, args.output == "scores")
    tower = ResNet18() if args.tower == "resnet18" else MobileNetV2()
    return Classifier(tower, args.words) if args.output == "scores" else Pooled(tower)


def load_image(path, size, Image):
    """The centre crop of `size` after scaling the image so both sides reach 1.125 x size (atelier's cover fit)."""
    stored = round(size * 1.125)
    with Image.open(path) as img:
        img = img.convert("RGB")
        scale = max(stored / img.width, stored / img.height)
        w, h = max(stored, round(img.width * scale)), max(stored, round(img.height * scale))
        img = img.resize((w, h), Image.BILINEAR)
        left, top = (w - size) // 2, (h - size) // 2
        return img.crop((left, top, left + size, top + size))


def end_to_end(model, args):
    import numpy as np
    from PIL import Image

    with open(args.images) as f:
        paths = [json.loads(line)["image"] for line in f if line.strip()]
    decode_s = forward_s = 0.0
    rows = 0
    start = time.perf_counter()
    cpu = time.process_time()
    with torch.no_grad():
        for i in range(0, len(paths), args.batch):
            t0 = time.perf_counter()
            batch = np.stack([np.asarray(load_image(p, args.input_size, Image)) for p in paths[i : i + args.batch]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)
            t1 = time.perf_counter()
            rows += model(x).shape[0]
            t2 = time.perf_counter()
            decode_s += t1 - t0
            forward_s += t2 - t1
    wall = time.perf_counter() - start
    return {"images": rows, "seconds": wall, "images_per_s": rows / wall, "decode_seconds": decode_s, "forward_seconds": forward_s, "cpu_seconds": time.process_time() - cpu}


def forward_passes(model, args):
    x = torch.rand(args.batch, 3, args.input_size, args.input_size)
    with torch.no_grad():
        model(x)  # warm-up
        done = 0
        start = time.perf_counter()
        cpu = time.process_time()
        while done < args.passes or time.perf_counter() - start < args.min_seconds:
            n = min(args.batch, args.passes - done) if done < args.passes else args.batch
            model(x[:n])
            done += n
        wall = time.perf_counter() - start
    return {"passes": done, "seconds": wall, "images_per_s": done / wall, "cpu_seconds": time.process_time() - cpu}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tower", choices=["small", "resnet18", "mobilenetv2"], default="small")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="small tower only")
    parser.add_argument("--stages", type=int, default=4, help="small tower only")
    parser.add_argument("--blocks", type=int, default=1, help="small tower only")
    parser.add_argument("--words", type=int, default=20, help="outputs of the score head")
    parser.add_argument("--output", choices=["pooled", "scores"], default="pooled")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: one per core")
    parser.add_argument("--images", help="NDJSON with an image path per line: time decode + resize + forward")
    parser.add_argument("--passes", type=int, default=0)
    parser.add_argument("--min-seconds", type=float, default=0.0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(0)
    model = build(args).eval()
    result = end_to_end(model, args) if args.images else forward_passes(model, args)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "tower": args.tower, "input_size": args.input_size, "batch": args.batch, **result}))


if __name__ == "__main__":
    sys.exit(main())
