#!/bin/bash
# Embed a catalogue in SHARDS local processes with GNU parallel (one-liner below), then merge.
# Paths (export them, or edit the defaults): ATELIER (the atelier command), MODEL (the model
# directory, or "pixels"), CATALOGUE (NDJSON {id, image} per line), OUT (the merged .npy);
# SHARDS (default: the number of cores) and JOBS (processes at once, default SHARDS).
# A failed shard is rerun alone with: "$ATELIER" embed ... --shard I/SHARDS
set -euo pipefail
ATELIER=${ATELIER:-atelier}
MODEL=${MODEL:-$HOME/atelier/weak.model}
CATALOGUE=${CATALOGUE:-$HOME/atelier/catalogue.ndjson}
OUT=${OUT:-$HOME/atelier/out/emb.npy}
SHARDS=${SHARDS:-$(nproc)}
JOBS=${JOBS:-$SHARDS}

parallel --halt now,fail=1 -j "$JOBS" "$ATELIER" embed --workers 1 -m "$MODEL" -i "$CATALOGUE" -o "$OUT" --shard {}/"$SHARDS" ::: $(seq 0 $((SHARDS - 1))) && "$ATELIER" merge "$OUT"
