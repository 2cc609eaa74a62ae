"""PyTorch CPU reference for bench/train-weak: the weak tower of src/lib/models/weak-model.ts (stem conv,
one basic residual block per stage, batch norm, global average pooling, dropout, word matrix without bias),
trained with SGD + momentum on a full or sampled softmax over the words. Prints one JSON object on stdout.

With --samples it is the PyTorch reference of a real train-weak run (bench/real.mk, real-weak-torch): the same
records, vocabulary, held-out split, word sampling, augmentation, loss, optimiser, schedule and sample budget;
it writes the pooled features of --embed's records (.npy + ids NDJSON) for the same probes.

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

from train_towers_torch import MobileNetV2, ResNet18
from stable_hash import stable_hash


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


class TowerWeak(nn.Module):
    """A tower of train_towers_torch.py (ResNet18 or MobileNetV2, as src/lib/models/towers/ builds
    them) with the same word matrix."""

    def __init__(self, words: int, tower: str = "resnet18"):
        super().__init__()
        self.tower = MobileNetV2() if tower == "mobilenetv2" else ResNet18()
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


def load_images(paths, stored: int):
    """sharp's 'cover' resize to stored x stored (scale the short side, centre crop), as uint8 NHWC."""
    import numpy as np
    from PIL import Image, ImageOps

    out = np.zeros((len(paths), stored, stored, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            out[i] = np.asarray(ImageOps.fit(im.convert("RGB"), (stored, stored), Image.BILINEAR))
    return out


def real_main(args) -> None:
    """train-weak's recipe on real records (see train-weak.ts and weak-trainer.ts): uniform word sampling,
    random crop + flip of the 1.125x stored image, /255, full softmax, dropout, SGD + momentum, lr / 10
    after --patience epochs without a better validation P@1, the last epoch's weights kept."""
    import numpy as np

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    vocab = [json.loads(l)["word"] for l in open(args.vocab) if l.strip()][: args.top_k]
    word_id = {w: i for i, w in enumerate(vocab)}
    records = [json.loads(l) for l in open(args.samples) if l.strip()]
    train, val = [], []
    for r in records:
        bag = sorted({word_id[t] for t in r.get("tokens", []) if t in word_id})
        if not bag:
            continue
        group = str(r.get(args.group_field, r["id"]))
        (val if stable_hash(group) / 4294967296 < args.val_fraction else train).append((r["image"], bag))
    stored = round(args.input_size * 1.125)
    started = time.perf_counter()
    train_x = load_images([p for p, _ in train], stored)
    val_x = load_images([p for p, _ in val], stored)
    decode_s = time.perf_counter() - started
    # train-weak --val-images: the epochs score held-out image floor(i n / N), i < N (all when N is 0 or >= n).
    scored = np.arange(len(val))
    if 0 < args.val_images < len(val):
        scored = (np.arange(args.val_images) * len(val)) // args.val_images
    images_of = [[] for _ in vocab]
    for i, (_, bag) in enumerate(train):
        for w in bag:
            images_of[w].append(i)
    with_images = [w for w in range(len(vocab)) if images_of[w]]
    model = TowerWeak(len(vocab), args.tower) if args.tower in ("resnet18", "mobilenetv2") else WeakModel(args.width, args.stages, args.blocks, len(vocab))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    size, off = args.input_size, (stored - args.input_size) // 2

    def to_tensor(batch):
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)

    def pooled(x_all, idx):
        model.eval()
        with torch.no_grad():
            return torch.cat([model.embed(to_tensor(x_all[idx[s : s + 128], off : off + size, off : off + size])) for s in range(0, len(idx), 128)])

    ks = [1, 5, 10, 15]
    log, best, since, lr = [], -1.0, 0, args.lr
    steps = -(-args.epoch_size // args.batch)
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0, c0, total = time.perf_counter(), time.process_time(), 0.0
        for _ in range(steps):
            words = rng.choice(with_images, args.batch)
            idx = np.array([images_of[w][rng.integers(len(images_of[w]))] for w in words])
            xs, ys, flips = rng.integers(0, stored - size + 1, args.batch), rng.integers(0, stored - size + 1, args.batch), rng.random(args.batch) < 0.5
            crops = np.stack([train_x[i, y : y + size, x : x + size] for i, x, y in zip(idx, xs, ys)])
            crops[flips] = crops[flips, :, ::-1]
            optimizer.zero_grad()
            z = F.dropout(model.embed(to_tensor(np.ascontiguousarray(crops))), p=args.dropout, training=True)
            loss = F.cross_entropy(z @ model.words.t(), torch.from_numpy(words))
            loss.backward()
            optimizer.step()
            total += loss.item()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        scores = pooled(val_x, scored) @ model.words.t().detach()
        top = scores.topk(max(ks), dim=1).indices.numpy()
        bags = [val[i][1] for i in scored]
        precision = {k: float(np.mean([len(set(top[i, :k]) & set(b)) / k for i, b in enumerate(bags)])) for k in ks}
        recall = {k: float(np.mean([len(set(top[i, :k]) & set(b)) / len(b) for i, b in enumerate(bags)])) for k in ks}
        log.append({"epoch": epoch, "lr": lr, "loss": total / steps, "seconds": seconds, "cpuSeconds": cpu, "imagesPerSecond": steps * args.batch / seconds, "precision": precision, "recall": recall})
        print(f"train_weak_torch: epoch {epoch} loss {total / steps:.4f} lr {lr} P@1 {precision[1]:.3f} P@5 {precision[5]:.3f} {steps * args.batch / seconds:.1f} img/s", file=sys.stderr)
        if precision[1] > best:
            best, since = precision[1], 0
        else:
            since += 1
            if since >= args.patience:
                lr /= 10
                since = 0
                for g in optimizer.param_groups:
                    g["lr"] = lr
    embed_records = [json.loads(l) for l in open(args.embed) if l.strip()]
    embed_x = load_images([r["image"] for r in embed_records], stored)
    features = pooled(embed_x, np.arange(len(embed_records))).numpy().astype(np.float32)
    np.save(args.out, features)
    with open(args.out[: -len(".npy")] + ".ids.ndjson", "w") as f:
        for i, r in enumerate(embed_records):
            f.write(json.dumps({"id": r["id"], "image": r["image"], "row": i}) + "\n")
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "train": len(train), "val": len(val), "words": len(vocab),
               "decodeSeconds": decode_s, "log": log}, open(args.out[: -len(".npy")] + ".log.json", "w"), indent=2)
    print(json.dumps({"train": len(train), "val": len(val), "last": log[-1]}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--tower", choices=["small", "resnet18", "mobilenetv2"], default="small")
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
    parser.add_argument("--samples", help="real run: crawl-tokenize records {id, image, tokens} to train on")
    parser.add_argument("--vocab", help="real run: crawl-tokenize vocabulary NDJSON")
    parser.add_argument("--top-k", type=int, default=1000)
    parser.add_argument("--group-field", default="id")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--val-images", type=int, default=0, help="score each epoch on this many held-out images, spread evenly (0: all), as train-weak")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--epoch-size", type=int, default=2048)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--embed", help="real run: records whose pooled features are written to --out")
    parser.add_argument("--out", help="real run: features .npy (ids and log beside it)")
    args = parser.parse_args()
    if args.samples:
        real_main(args)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TowerWeak(args.words, args.tower) if args.tower in ("resnet18", "mobilenetv2") else WeakModel(args.width, args.stages, args.blocks, args.words)
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
