"""Peer of bench/ann.ts: faiss IndexHNSWFlat (inner product of L2-normalised rows = cosine) on the same rows.

usage: /usr/bin/python3 bench/ann_faiss.py GALLERY.npy QUERIES.npy EXACT.npy --k 10 --threads 2 --m 16 --ef-construction 128 --ef 64,128
EXACT.npy holds the exact top-k gallery rows of the first len(EXACT) queries (int64), for recall@k.
Prints one JSON object: build seconds, and per efSearch the search seconds, queries/s and recall@k.
"""
import argparse
import json
import resource
import time

import numpy as np


def timed_searches(index, queries, exact, k, name, settings, apply):
    """Per setting: apply(setting), search every query for k neighbours, and time it; recall@k on the
    first len(exact) queries against their exact top-k rows. One {name: setting, seconds, queriesPerSecond, recall} each."""
    runs = []
    for setting in settings:
        apply(setting)
        started = time.perf_counter()
        _, found = index.search(queries, k)
        seconds = time.perf_counter() - started
        hits = sum(len(set(found[q]) & set(exact[q])) for q in range(exact.shape[0]))
        runs.append({name: setting, "seconds": seconds, "queriesPerSecond": queries.shape[0] / seconds, "recall": hits / (exact.shape[0] * k)})
    return runs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gallery")
    parser.add_argument("queries")
    parser.add_argument("exact")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--ef", default="64")
    args = parser.parse_args()
    import faiss
    faiss.omp_set_num_threads(args.threads)
    gallery = np.load(args.gallery).astype(np.float32)
    queries = np.load(args.queries).astype(np.float32)
    exact = np.load(args.exact).astype(np.int64)
    faiss.normalize_L2(gallery)
    faiss.normalize_L2(queries)
    started = time.perf_counter()
    index = faiss.IndexHNSWFlat(gallery.shape[1], args.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = args.ef_construction
    index.add(gallery)
    build = time.perf_counter() - started
    runs = timed_searches(index, queries, exact, args.k, "ef", [int(e) for e in args.ef.split(",")], lambda ef: setattr(index.hnsw, "efSearch", ef))
    print(json.dumps({
        "faiss": faiss.__version__,
        "threads": faiss.omp_get_max_threads(),
        "m": args.m,
        "efConstruction": args.ef_construction,
        "buildSeconds": build,
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
