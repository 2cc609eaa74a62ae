"""PyTorch CPU peer for bench/int8-dense: the same dense models on feature rows, float32 and int8.

The models are those bench/int8-dense.ts builds in tfjs: the SizeNet student (dim -> 256 -> 128 -> 64
ReLU -> 1, sigmoid) and train-classifier's MLP head (dim -> 256 ReLU -> 10, softmax). int8 is PyTorch's
own int8 path for Linear layers, torch.ao.quantization.quantize_dynamic (int8 weights per tensor, the
input quantized per batch at run time, fbgemm kernels): what a PyTorch user reaches for first.
Rows: ReLU of N(0.2, 1), --rows of them, run in batches of --batch for at least --seconds, eval mode,
torch.inference_mode, --threads intra-op threads. Prints one JSON object: rows per second per precision.

Run with Debian's /usr/bin/python3 (python3-torch). Exits 3 without torch.
"""
import argparse
import json
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    print("dense_torch: no torch under this python", file=sys.stderr)
    sys.exit(3)


def build(kind: str, dim: int) -> nn.Module:
    if kind == "student":
        return nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    return nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, 10), nn.Softmax(dim=1))


def rate(model: nn.Module, data: torch.Tensor, batch: int, seconds: float) -> int:
    rows = data.shape[0]
    done = 0
    start = time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - start < seconds or done < rows:
            for first in range(0, rows, batch):
                model(data[first : first + batch])
                done += min(batch, rows - first)
    return round(done / (time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["student", "mlp"], required=True)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    data = torch.relu(torch.randn(args.rows, args.dim) + 0.2)
    model = build(args.model, args.dim).eval()
    int8 = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        f, q = model(data), int8(data)
    # One warm-up pass each, then the timed passes, float first as in int8-dense.ts.
    rate(model, data, args.batch, 0)
    rate(int8, data, args.batch, 0)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "float": rate(model, data, args.batch, args.seconds), "int8": rate(int8, data, args.batch, args.seconds),
              "worstMove": float((f - q).abs().max())}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
