#!/bin/bash
# Packs what bench/device/run.sh needs on a GPU machine that has no network and no Node (this
# workplace's `device` tool: at most 64 MiB travel) into .devbundle/b.tar.xz: the node binary, the
# node_modules files atelier loads for gpu-check, info and train-weak (found by tracing those runs
# here), dist/, 800 samples of out/demo (run `make demo` first) and the nsfwjs MobileNetV2 backbone.
# The Vulkan loader travels as .deb files in .gl/ (see /work/.library/device/README.md).
# Then: device run, command `bash .devbundle/run.sh 2>&1 | tee $OUT/log.txt`, carry .devbundle and .gl.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -s out/demo/samples.ndjson ] || { echo "bundle.sh: run make demo first" >&2; exit 2; }
ls .gl/libvulkan1_*.deb > /dev/null || { echo "bundle.sh: .gl/libvulkan1_*.deb missing" >&2; exit 2; }
B=$(mktemp -d); export ATELIER_TRACE=$B.trace; : > "$ATELIER_TRACE"
vk=$(mktemp -d); dpkg -x .gl/libvulkan1_*.deb "$vk"
mkdir -p "$B/bin" "$B/backbone" "$B/out/demo"
node bin/atelier import-backbone --from nsfwjs -o "$B/backbone/nsfwjs-mobilenetv2" > /dev/null
head -800 out/demo/samples.ndjson > "$B/out/demo/samples.ndjson"; cp out/demo/vocab.ndjson "$B/out/demo/"
traced() { LD_LIBRARY_PATH="$vk/usr/lib/x86_64-linux-gnu" NODE_OPTIONS="--import $PWD/bench/device/trace-hook.mjs" "$@" > /dev/null 2>&1 || true; }
traced node dist/bench/gpu-check.js --backends webgpu,wasm --family mobilenetv2 --size 32 --batch 4 --wasm-train-steps 1 --wasm-images 8 --out "$B/gc.json"
traced node bin/atelier info
traced node bin/atelier train-weak -i "$B/out/demo/samples.ndjson" --vocab out/demo/vocab.ndjson --tower mobilenetv2 \
  --backbone "$B/backbone/nsfwjs-mobilenetv2" --input-size 32 --epochs 1 --epoch-size 32 --workers 2 -o "$B/w.model"
rm -rf "$B/gc.json" "$B/w.model"* 
sort -u "$ATELIER_TRACE" | sed 's#^file://##' | grep "^$PWD/node_modules/" | sed "s#^$PWD/##" | while read -r f; do
  mkdir -p "$B/$(dirname "$f")"; cp "$f" "$B/$f"; done
(cd "$B" && find node_modules -type d) | while read -r d; do if [ -f "$d/package.json" ]; then cp -n "$d/package.json" "$B/$d/"; fi; done
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$B/node_modules/@tensorflow/tfjs-backend-wasm/dist/"
for p in @jsquash @img; do rm -rf "${B:?}/node_modules/$p"; cp -r "node_modules/$p" "$B/node_modules/"; done
node -e 'const fs=require("fs"),path=require("path");for(const l of fs.readFileSync(process.argv[1]+"/out/demo/samples.ndjson","utf8").trim().split("\n")){const p=JSON.parse(l).image;fs.mkdirSync(path.dirname(process.argv[1]+"/"+p),{recursive:true});fs.copyFileSync(p,process.argv[1]+"/"+p)}' "$B"
cp -r dist "$B/dist"; cp "$(command -v node)" "$B/bin/node"
mkdir -p .devbundle; cp bench/device/run.sh .devbundle/run.sh
tar cJf .devbundle/b.tar.xz -C "$B" .
rm -rf "$B" "$B.trace" "$vk"
du -h .devbundle/b.tar.xz
