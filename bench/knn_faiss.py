"""Peer of bench/knn.ts: exact cosine k-NN with faiss IndexFlatIP (inner product of L2-normalised rows).

usage: /usr/bin/python3 bench/knn_faiss.py GALLERY.npy QUERIES.npy OUT.npy --k 10 --threads 2 [--repeats 3]
Writes the neighbour rows (queries x k, int64) to OUT.npy and prints one JSON object on stdout:
the best of `repeats` timings of normalise + add + search, and of the search alone.
"""
import argparse
import json
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gallery")
    parser.add_argument("queries")
    parser.add_argument("out")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream-rows", type=int, default=0, help="read the gallery memory-mapped, this many rows at a time")
    args = parser.parse_args()
    try:
        import faiss
    except ImportError as err:
        print(json.dumps({"error": f"faiss does not import: {err}"}))
        return
    faiss.omp_set_num_threads(args.threads)
    if args.stream_rows > 0:
        stream(faiss, args)
        return
    gallery_raw = np.load(args.gallery).astype(np.float32)
    queries_raw = np.load(args.queries).astype(np.float32)
    best_total = best_search = best_cpu = float("inf")
    indices = None
    for _ in range(args.repeats):
        started = time.perf_counter()
        cpu_started = time.process_time()
        gallery = gallery_raw.copy()
        queries = queries_raw.copy()
        faiss.normalize_L2(gallery)
        faiss.normalize_L2(queries)
        index = faiss.IndexFlatIP(gallery.shape[1])
        index.add(gallery)
        searched = time.perf_counter()
        _, indices = index.search(queries, args.k)
        done = time.perf_counter()
        best_cpu = min(best_cpu, time.process_time() - cpu_started)
        best_total = min(best_total, done - started)
        best_search = min(best_search, done - searched)
        del index, gallery
    np.save(args.out, indices.astype(np.int64))
    print(json.dumps({
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "threads": faiss.omp_get_max_threads(),
        "repeats": args.repeats,
        "seconds": best_total,
        "searchSeconds": best_search,
        "cpuSeconds": best_cpu,
        "queriesPerSecond": queries_raw.shape[0] / best_total,
    }))


def stream(faiss, args):
    """The gallery .npy memory-mapped and searched slab by slab (normalised copy, IndexFlatIP), results merged in a ResultHeap."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    gallery = np.load(args.gallery, mmap_mode="r")
    queries = np.load(args.queries).astype(np.float32)
    faiss.normalize_L2(queries)
    heap = faiss.ResultHeap(queries.shape[0], args.k, keep_max=True)
    for start in range(0, gallery.shape[0], args.stream_rows):
        slab = np.array(gallery[start:start + args.stream_rows], dtype=np.float32)
        faiss.normalize_L2(slab)
        index = faiss.IndexFlatIP(slab.shape[1])
        index.add(slab)
        scores, indices = index.search(queries, args.k)
        heap.add_result(scores, indices + start)
        del index, slab
    heap.finalize()
    seconds = time.perf_counter() - started
    np.save(args.out, heap.I.astype(np.int64))
    print(json.dumps({
        "faiss": faiss.__version__,
        "threads": faiss.omp_get_max_threads(),
        "streamRows": args.stream_rows,
        "seconds": seconds,
        "cpuSeconds": time.process_time() - cpu_started,
        "queriesPerSecond": queries.shape[0] / seconds,
    }))


if __name__ == "__main__":
    main()
