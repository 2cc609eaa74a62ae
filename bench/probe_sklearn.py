"""Peer of atelier's linear probe (train-classifier --mode head, bench/real.mk): scikit-learn's
LogisticRegression on the same frozen features, labels and hash split.

The split is train-classifier's: FNV-1a + murmur3 finish of the record id (products.csv has no
'product' field), lowest --test-fraction of hashes is test, the next --val-fraction validation,
the rest train. Features are standardised with the training rows' mean and deviation; C is chosen
on the validation split (accuracy), the model is the one fitted on the training split at that C.
Macro-F1 is averaged over every label of the records, as atelier's report does.

usage: /usr/bin/python3 bench/probe_sklearn.py FEATURES.npy --labels products.csv --fields articleType,baseColour
prints one JSON object on stdout.
"""
import argparse
import csv
import json
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from stable_hash import stable_hash


def split_of(key, test_fraction, val_fraction):
    u = stable_hash(key) / 4294967296
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("features")
    p.add_argument("--ids", help="ids NDJSON (default: FEATURES without .npy + .ids.ndjson, as embed writes)")
    p.add_argument("--labels", required=True)
    p.add_argument("--id-field", default="id")
    p.add_argument("--fields", default="articleType,baseColour,gender,usage")
    p.add_argument("--cs", default="0.001,0.01,0.1,1")
    p.add_argument("--class-weight", choices=["balanced", "none"], default="balanced")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--max-iter", type=int, default=500)
    a = p.parse_args()

    x = np.load(a.features).astype(np.float64)
    ids_path = a.ids or (a.features[:-4] if a.features.endswith(".npy") else a.features) + ".ids.ndjson"
    with open(ids_path) as f:
        ids = [str(r["id"]) for r in map(json.loads, filter(str.strip, f)) if "id" in r]
    row = {i: r for r, i in enumerate(ids)}
    with open(a.labels, newline="") as f:
        records = list(csv.DictReader(f))
    out = {"features": a.features, "dim": int(x.shape[1]), "classWeight": a.class_weight, "cs": a.cs, "facets": {}}
    for field in a.fields.split(","):
        rows, labels, splits = [], [], []
        for rec in records:
            rid, label = rec[a.id_field], rec.get(field, "")
            if label == "" or rid not in row:
                continue
            rows.append(row[rid])
            labels.append(label)
            splits.append(split_of(rid, a.test_fraction, a.val_fraction))
        names = sorted(set(labels))
        y = np.array([names.index(l) for l in labels])
        xs = x[rows]
        s = np.array(splits)
        tr, va, te = s == "train", s == "val", s == "test"
        mean, std = xs[tr].mean(0), xs[tr].std(0)
        xs = (xs - mean) / np.where(std > 1e-12, std, 1)
        sweep, best = [], None
        t0 = time.time()
        for c in [float(v) for v in a.cs.split(",")]:
            model = LogisticRegression(C=c, max_iter=a.max_iter, class_weight=None if a.class_weight == "none" else "balanced")
            model.fit(xs[tr], y[tr])
            acc = accuracy_score(y[va], model.predict(xs[va]))
            sweep.append({"C": c, "valAccuracy": round(acc, 4), "iterations": int(model.n_iter_.max())})
            if best is None or acc > best[0]:
                best = (acc, c, model)
        pred = best[2].predict(xs[te])
        out["facets"][field] = {
            "classes": len(names), "train": int(tr.sum()), "val": int(va.sum()), "test": int(te.sum()),
            "C": best[1], "sweep": sweep, "seconds": round(time.time() - t0, 1),
            "accuracy": round(accuracy_score(y[te], pred), 4),
            "macroF1": round(f1_score(y[te], pred, labels=list(range(len(names))), average="macro", zero_division=0), 4),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
