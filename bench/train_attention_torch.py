"""One training step of the Stitch Fix model (src/lib/models/attention/) in PyTorch, for bench/train-attention.

Same architecture and loss as the tfjs model: the deck's global branch, K = 3 recurrent
scale-and-translate crops of the first stage's map (affine_grid/grid_sample, align_corners=False,
zero padding), Deep TEN encoding (8 codewords of 32 channels), L = L_cls + 0.01 L_div + 0.1 L_loc.
Prints {"secondsPerStep", "steps", "torch"} as JSON.
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--scale', type=int, default=8)
p.add_argument('--width', type=int, default=64)
p.add_argument('--batch', type=int, default=8)
p.add_argument('--seconds', type=float, default=5)
a = p.parse_args()
torch.set_num_threads(2)
H, W, C, K, G, CW, TD, HID = 384 // a.scale, 256 // a.scale, 59, 3, 8, 8, 32, 64


def pair(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class Model(nn.Module):
    def __init__(s, w):
        super().__init__()
        s.stage1 = nn.Sequential(pair(3, w), nn.Dropout(0.25), nn.MaxPool2d(4), nn.BatchNorm2d(w))
        s.stage2 = nn.Sequential(pair(w, 2 * w), nn.Dropout(0.25), nn.MaxPool2d(4), nn.BatchNorm2d(2 * w))
        s.stage3 = pair(2 * w, 4 * w)
        s.context, s.recurrent, s.glimpse = nn.Linear(4 * w, HID), nn.Linear(HID, HID, bias=False), nn.Linear(TD, HID, bias=False)
        s.key, s.query, s.scale = nn.Linear(4 * w, HID, bias=False), nn.Linear(HID, HID, bias=False), nn.Linear(HID, 2)
        s.texture = nn.Linear(w, TD)
        s.codewords = nn.Parameter(torch.empty(CW, TD).uniform_(-1 / math.sqrt(CW), 1 / math.sqrt(CW)))
        s.smoothing = nn.Parameter(torch.empty(CW).uniform_(0.5, 1.5))
        s.head = nn.Linear(4 * w + K * CW * TD, C)

    def forward(s, x):
        u = s.stage1(x)
        f = s.stage3(s.stage2(u))
        n, cl, h, w = f.shape
        cells = f.flatten(2).transpose(1, 2)  # [N, hw, Cl]
        keys = s.key(cells)
        ctx = s.context(cells.mean(1))
        ys, xs = torch.meshgrid(-1 + (2 * torch.arange(h) + 1) / h, -1 + (2 * torch.arange(w) + 1) / w, indexing='ij')
        state, prev = torch.zeros(n, HID), torch.zeros(n, TD)
        textures, maps, thetas = [], [], []
        for _ in range(K):
            state = torch.tanh(ctx + s.recurrent(state) + s.glimpse(prev))
            m = torch.softmax((keys * s.query(state)[:, None]).sum(-1) / math.sqrt(HID), 1)
            tx, ty = (m * xs.flatten()).sum(1), (m * ys.flatten()).sum(1)
            sx, sy = s.scale(state).unbind(1)
            z = torch.zeros_like(sx)
            theta = torch.stack([sx, z, tx, z, sy, ty], 1).view(n, 2, 3)
            crop = F.grid_sample(u, F.affine_grid(theta, (n, u.shape[1], G, G), align_corners=False), align_corners=False)
            local = F.relu(s.texture(crop.flatten(2).transpose(1, 2)))  # [N, G*G, TD]
            prev = local.mean(1)
            r = local[:, :, None] - s.codewords[None, None]
            assign = torch.softmax(-s.smoothing * (r ** 2).sum(-1), 2)
            e = (assign[..., None] * r).sum(1).flatten(1) / (G * G)
            textures.append(e / (e.norm(dim=1, keepdim=True) + 1e-6))
            maps.append(m)
            thetas.append(torch.stack([sx, sy, tx, ty], 1))
        emb = torch.cat([f.mean((2, 3))] + textures, 1)
        return s.head(emb), torch.stack(maps, 1), torch.stack(thetas, 1)


def loss_of(logits, y, maps, thetas):
    cls = ((torch.sigmoid(logits) - y) ** 2).sum(1).mean()
    div = (maps[:, :-1] * maps[:, 1:]).sum((1, 2)).mean() / (K - 1)
    sx, sy, tx, ty = thetas.unbind(2)
    anchors = torch.tensor([[0.5 * math.sin(2 * math.pi * k / K), -0.5 * math.cos(2 * math.pi * k / K)] for k in range(K)])
    ls = F.relu(sx.abs() - 0.5) ** 2 + F.relu(sy.abs() - 0.5) ** 2
    la = 0.5 * ((tx - anchors[:, 0]) ** 2 + (ty - anchors[:, 1]) ** 2)
    lp = F.relu(0.1 - sx) + F.relu(0.1 - sy)
    loc = (ls + 0.01 * la + 0.1 * lp).sum(1).mean()
    return cls + 0.01 * div + 0.1 * loc


model = Model(a.width)
nn.init.zeros_(model.scale.weight)
nn.init.constant_(model.scale.bias, 0.5)
opt = torch.optim.Adam(model.parameters(), 1e-3)
x, y = torch.rand(a.batch, 3, H, W), (torch.rand(a.batch, C) > 0.9).float()


def step():
    opt.zero_grad()
    logits, maps, thetas = model(x)
    loss = loss_of(logits, y, maps, thetas)
    loss.backward()
    opt.step()
    return loss.item()


step()
steps, started = 0, time.perf_counter()
while steps < 2 or time.perf_counter() - started < a.seconds:
    step()
    steps += 1
print(json.dumps({'secondsPerStep': (time.perf_counter() - started) / steps, 'steps': steps, 'torch': torch.__version__}))
