"""Peer of bench/ann.ts --index ivf: faiss IndexIVFFlat (inner product of L2-normalised rows = cosine,
spherical k-means) on the same rows, with the same list count, k-means sample size and iterations.

usage: /usr/bin/python3 bench/ivf_faiss.py GALLERY.npy QUERIES.npy EXACT.npy --k 10 --threads 2 --lists 4000 --train-rows 160000 --iterations 10 --nprobe 16,32
EXACT.npy holds the exact top-k gallery rows of the first len(EXACT) queries, for recall@k.
Prints one JSON object: train and add seconds, and per nprobe the search seconds, queries/s and recall@k.
"""
import argparse
import json
import resource
import time

import numpy as np

from ann_faiss import timed_searches


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gallery")
    parser.add_argument("queries")
    parser.add_argument("exact")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lists", type=int, required=True)
    parser.add_argument("--train-rows", type=int, required=True)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--nprobe", default="32")
    args = parser.parse_args()
    import faiss
    faiss.omp_set_num_threads(args.threads)
    gallery = np.load(args.gallery, mmap_mode="r")
    queries = np.load(args.queries).astype(np.float32)
    exact = np.load(args.exact).astype(np.int64)
    faiss.normalize_L2(queries)
    started = time.perf_counter()
    rng = np.random.default_rng(1)
    sample = np.ascontiguousarray(gallery[np.sort(rng.choice(gallery.shape[0], args.train_rows, replace=False))], dtype=np.float32)
    faiss.normalize_L2(sample)
    quantizer = faiss.IndexFlatIP(gallery.shape[1])
    index = faiss.IndexIVFFlat(quantizer, gallery.shape[1], args.lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True
    index.cp.niter = args.iterations
    index.cp.max_points_per_centroid = 1 << 30
    index.train(sample)
    trained = time.perf_counter() - started
    for start in range(0, gallery.shape[0], 65536):
        block = np.array(gallery[start:start + 65536], dtype=np.float32)  # a copy: the memory map is read-only
        faiss.normalize_L2(block)
        index.add(block)
    build = time.perf_counter() - started
    runs = timed_searches(index, queries, exact, args.k, "nprobe", [int(p) for p in args.nprobe.split(",")], lambda nprobe: setattr(index, "nprobe", nprobe))
    print(json.dumps({
        "faiss": faiss.__version__,
        "threads": faiss.omp_get_max_threads(),
        "lists": args.lists,
        "trainRows": args.train_rows,
        "iterations": args.iterations,
        "trainSeconds": trained,
        "buildSeconds": build,
        "cpuSeconds": time.process_time(),
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
