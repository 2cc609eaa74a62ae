#!/bin/bash
# One prepared device run (H200): gpu-check on webgpu vs wasm, PyTorch CUDA peers, train-weak on webgpu vs wasm.
START=$(date +%s); DEADLINE=${DEADLINE:-450}
left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
step() { # step CAP NAME CMD...
  local cap=$1 name=$2; shift 2; local l=$(left); [ $l -lt 15 ] && { echo "== SKIP $name (no time)"; return; }
  [ $cap -gt $l ] && cap=$l
  echo "== $name (cap ${cap}s, t=$(( $(date +%s) - START ))s)"; local t0=$(date +%s.%N)
  timeout -k 5 $cap "$@"; local rc=$?; echo "== $name rc=$rc in $(awk "BEGIN{print $(date +%s.%N)-$t0}") s"
}
[ -z "$LOCAL" ] && { for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; }
tar xJf .devbundle/b.tar.xz || exit 9
export PATH=$PWD/bin:$PATH XDG_RUNTIME_DIR=/tmp
for d in /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d; do ls $d 2>/dev/null | sed "s#^#$d/#"; done
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json VK_ICD_FILENAMES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; uptime; node --version
step 60 info node bin/atelier info > $OUT/info.json
cat $OUT/info.json | head -c 3000; echo
GC="node dist/bench/gpu-check.js"
step 200 gc-r18 $GC --backends webgpu,wasm --family resnet18 --size 128 --batch 32 --timeout 150 --out $OUT/gc-r18.json
step 150 gc-r50 $GC --backends webgpu --family resnet50 --size 224 --batch 64 --timeout 140 --out $OUT/gc-r50.json
for a in "resnet18 128 32" "resnet50 224 64" "mobilenetv2 96 64"; do set -- $a
  step 40 torch-$1 python3 bench/train_towers_torch.py --tower $1 --input-size $2 --batch $3 --device cuda --warmup 3 --steps 20 | tee -a $OUT/torch.jsonl; done
W="node bin/atelier train-weak -i out/demo/samples.ndjson --vocab out/demo/vocab.ndjson --loss full --lr 0.05 --negatives 20 --seed 3"
step 60 weak-small-webgpu $W --input-size 32 --width 16 --epochs 3 --epoch-size 1024 --backend webgpu -o /tmp/w1.model 2>&1 | tee -a $OUT/weak.txt
step 60 weak-small-wasm1 $W --input-size 32 --width 16 --epochs 3 --epoch-size 1024 --backend wasm --workers 1 -o /tmp/w2.model 2>&1 | tee -a $OUT/weak.txt
M="--tower mobilenetv2 --backbone backbone/nsfwjs-mobilenetv2 --input-size 96 --lr 0.01 --epochs 1 --epoch-size 4096"
step 90 weak-mnv2-webgpu $W $M --backend webgpu -o /tmp/w3.model 2>&1 | tee -a $OUT/weak.txt
step 90 weak-mnv2-wasm16 $W $M --backend wasm --workers 16 --epoch-size 1024 -o /tmp/w4.model 2>&1 | tee -a $OUT/weak.txt
step 90 gc-mnv2 $GC --backends webgpu --family mobilenetv2 --size 96 --batch 64 --timeout 80 --out $OUT/gc-mnv2.json
nvidia-smi --query-gpu=memory.used --format=csv; echo "== total $(( $(date +%s) - START )) s"
