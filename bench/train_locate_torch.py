"""One training step of the train-locate model in PyTorch, for bench/train-locate.

The small tower of bench/train_weak_torch.py (stem conv, one basic residual block per stage, batch
norm, global average pooling) with a linear head of 5 outputs (foreground logit, box edges), on
square windows cut from the photos and resized bilinearly (affine_grid + grid_sample, as
tf.image.cropAndResize); loss: binary cross-entropy + 4 x smooth-L1 on the foreground windows; Adam.
Prints {"secondsPerStep", "steps", "torch", "threads"} as JSON.
"""
import argparse, json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from train_weak_torch import WeakModel
except ImportError as err:
    print(json.dumps({"error": f"cannot import torch: {err}"}))
    sys.exit(3)

p = argparse.ArgumentParser()
for name, default in [("image", 64), ("patch", 24), ("width", 8), ("stages", 3), ("photos", 4), ("windows", 8), ("threads", 2)]:
    p.add_argument(f"--{name}", type=int, default=default)
p.add_argument("--seconds", type=float, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

tower = WeakModel(a.width, a.stages, 1, 1)
head = nn.Linear(a.width * 2 ** (a.stages - 1), 5)
params = [q for n, q in tower.named_parameters() if n != "words"] + list(head.parameters())
optimizer = torch.optim.Adam(params, lr=0.01)
photos = torch.rand(a.photos, 3, a.image, a.image)
n = a.photos * a.windows


def step():
    # Random square windows (fractions of the photo) and labels, as train-locate draws them each step.
    side = 0.3 + 0.6 * torch.rand(n)
    x0, y0 = (1 - side) * torch.rand(n), (1 - side) * torch.rand(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = side, side
    theta[:, 0, 2], theta[:, 1, 2] = 2 * x0 + side - 1, 2 * y0 + side - 1
    which = torch.arange(n) // a.windows
    grid = F.affine_grid(theta, (n, 3, a.patch, a.patch), align_corners=True)
    patches = F.grid_sample(photos[which], grid, align_corners=True)
    labels = (torch.arange(n) % 2 == 0).float()
    edges = torch.rand(n, 4)
    optimizer.zero_grad()
    out = head(tower.embed(patches))
    cls = F.binary_cross_entropy_with_logits(out[:, 0], labels)
    reg = (F.smooth_l1_loss(out[:, 1:], edges, reduction="none").sum(1) * labels).sum() / labels.sum().clamp(min=1)
    loss = cls + 4 * reg
    loss.backward()
    optimizer.step()
    return loss.item()


tower.train()
step(); step()
steps, start = 0, time.perf_counter()
while steps < 3 or time.perf_counter() - start < a.seconds:
    step()
    steps += 1
print(json.dumps({"secondsPerStep": (time.perf_counter() - start) / steps, "steps": steps, "torch": torch.__version__, "threads": torch.get_num_threads()}))
