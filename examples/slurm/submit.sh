#!/bin/bash
# Queues the embedding array (embed-array.sbatch, 16 shards) and a merge that starts when every
# task has succeeded. Same variables as embed-array.sbatch (ATELIER, MODEL, CATALOGUE, OUT).
set -euo pipefail
ATELIER=${ATELIER:-atelier}
OUT=${OUT:-$HOME/atelier/out/emb.npy}
here=$(cd "$(dirname "$0")" && pwd)
array=$(sbatch --parsable --export=ALL "$here/embed-array.sbatch")
sbatch --parsable --export=ALL --dependency="afterok:${array%%;*}" --job-name=atelier-merge --wrap "\"$ATELIER\" merge \"$OUT\""
