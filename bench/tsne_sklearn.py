"""Peer of bench/tsne.ts: scikit-learn's Barnes-Hut t-SNE on the same rows, timed, and scikit-learn's
trustworthiness of its map and of ours (an independent check of our metric).

usage: /usr/bin/python3 bench/tsne_sklearn.py INPUT.npy OUT.npy [OURS.npy] --seed N --perplexity P --iterations I
prints one JSON object on stdout.
"""
import argparse
import json
import os
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("out")
    parser.add_argument("ours", nargs="?")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    try:
        import sklearn
        from sklearn.manifold import TSNE, trustworthiness
    except ImportError as err:
        print(json.dumps({"error": f"scikit-learn does not import: {err}"}))
        return
    rows = np.load(args.input).astype(np.float64)
    tsne = TSNE(n_components=2, perplexity=args.perplexity, early_exaggeration=12.0, learning_rate="auto",
                n_iter=args.iterations, init="random", method="barnes_hut", angle=0.5, random_state=args.seed)
    started = time.perf_counter()
    coords = tsne.fit_transform(rows)
    seconds = time.perf_counter() - started
    np.save(args.out, coords.astype(np.float32))
    result = {
        "sklearn": sklearn.__version__,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "seconds": seconds,
        "kl": float(tsne.kl_divergence_),
        "trustworthiness": float(trustworthiness(rows, coords, n_neighbors=args.k)),
    }
    if args.ours:
        ours = np.load(args.ours).astype(np.float64)
        result["trustworthinessOfOurs"] = float(trustworthiness(rows, ours, n_neighbors=args.k))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
