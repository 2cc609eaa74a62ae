# atelier: `make demo` installs and runs the whole pipeline on generated fixtures; `make test` runs the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
NODE ?= node
ATELIER := $(NODE) bin/atelier
FIXTURES := fixtures/out
SEED ?= 1
DEMO := out/demo
SOURCES := $(shell find src test fixtures bench -name '*.ts' -not -path '*/out/*' 2>/dev/null) tsconfig.json

.PHONY: all install build fixtures test test-fast test-quality coverage demo report review-db review retrain real-locate locate-quality bench man man-check gpu gpu-check clean

all: build

# npm ci only when the lock file changed; the optional native tfjs packages are never installed here (see `make gpu`).
# better-sqlite3 compiles from source (.prebuild-installrc); node-gyp takes the Node headers from the
# prefix of the running node (e.g. /usr/include/node) rather than downloading them from nodejs.org.
NODE_PREFIX := $(shell $(NODE) -p "require('path').resolve(process.execPath, '../..')" 2>/dev/null)
node_modules/.package-lock.json: package-lock.json package.json
	if [ -z "$${npm_config_nodedir:-}" ] && [ -f "$(NODE_PREFIX)/include/node/node.h" ]; then export npm_config_nodedir="$(NODE_PREFIX)"; fi; \
	  npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.package-lock.json

dist/.built: node_modules/.package-lock.json $(SOURCES)
	npx tsc -p tsconfig.json
	@touch $@

build: dist/.built

$(FIXTURES)/.done: dist/.built
	rm -rf $(FIXTURES)
	$(NODE) dist/fixtures/generate.js --seed $(SEED) --out $(FIXTURES)
	@touch $@

fixtures: $(FIXTURES)/.done

# The suite: `build` is the type check (tsc, which also writes dist/: the CLI the tests spawn and the
# worker threads run the compiled files), then vitest runs test/**/*.test.ts from source, three files at
# a time (on 2 cores: it fills the idle gaps of two), so each trainer trains in one thread unless a test asks for --workers.
# test-fast leaves out the end-to-end files that train for minutes (vitest.config.ts); coverage writes coverage/.
VITEST := ATELIER_TRAIN_WORKERS=1 $(NODE) node_modules/vitest/vitest.mjs run
test: build fixtures
	$(VITEST)

test-fast: build fixtures
	$(VITEST) --project fast

# The model-quality tier: the tests that train for a minute or more to show a model learns what it
# must by a stated margin (`describe.runIf(MODEL_QUALITY)('model quality', ...)` in these files;
# `make test` lists them as skipped). CI runs `make test` and then this (.ci/run).
QUALITY_FILES := $(addprefix test/commands/,weak-pipeline.test.ts train-triplet.test.ts sizenet.test.ts train-attention.test.ts train-attention-patch.test.ts train-classifier-stn.test.ts locate.test.ts)
test-quality: build fixtures
	ATELIER_TEST_QUALITY=1 $(VITEST) -t 'model quality' $(QUALITY_FILES)

# vitest's v8 provider counts the test processes only, not the CLI processes the tests start (README: Tests).
coverage: build fixtures
	$(VITEST) --coverage

man: build
	$(NODE) dist/src/gen-man.js

man-check: build
	$(NODE) dist/src/gen-man.js --check

# Every benchmark, one after another (tens of minutes); each writes bench/out/<name>.json. Record in bench/RESULTS.md.
BENCHES ?= train-cnn train-weak train-towers knn rise crawl tsne teacher-score onnx review
bench: build
	for b in $(BENCHES); do echo "== bench/$$b"; $(NODE) dist/bench/$$b.js || exit 1; done

# On a CUDA 11.2 box: the native tfjs GPU backend (downloads libtensorflow, so it is not part of npm ci);
# on a CUDA 12 box: onnxruntime's CUDA provider (downloaded from nuget.org by its own install script,
# which .npmrc skips in npm ci).
gpu: install
	npm install --no-save @tensorflow/tfjs-node-gpu@4.22.0
	ONNXRUNTIME_NODE_INSTALL=cuda12 $(NODE) node_modules/onnxruntime-node/script/install.js

# On a GPU box: every backend's probe (atelier info), then ResNet-18 at 128 px training steps and an
# embed of 1,000 images on each GPU backend, in img/s beside WASM (README "Running on a GPU"), then
# train-classifier and embed as commands on WebGPU, embed checked against WASM (skipped without an adapter).
# GPU_CHECK_FLAGS passes more, e.g. --family resnet50 --size 224 --batch 64.
GPU_CHECK_FLAGS ?=
gpu-check: build
	ATELIER_BACKEND=auto $(ATELIER) info | $(NODE) -e 'const i=JSON.parse(require("fs").readFileSync(0,"utf8"));for(const b of i.backends)console.log(b.name.padEnd(15),b.status.padEnd(14),b.device??"",b.why);console.log(JSON.stringify(i.gpu))'
	$(NODE) dist/bench/gpu-check.js --backends webgpu,gpu,wasm $(GPU_CHECK_FLAGS)
	ATELIER_BACKEND= $(VITEST) test/commands/webgpu.test.ts

# The whole pipeline on the fixture catalogue, small settings so it runs in a few minutes on 2 cores:
# crawl the fixture shop over HTTP -> weak features -> tags, embeddings -> retrieval; sales ->
# teacher -> SizeNet student -> day-one advice -> RISE explanations.
DEMO_TOWER := --input-size 32 --width 16
LOCATE_TOWER := --image-size 96 --input-size 24 --stages 2 --width 8 --lr 0.01 --batch 4
# A fixed port: crawled records are keyed by URL, so the same port gives the same split and model on every run.
DEMO_PORT ?= 8765
demo: build fixtures
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(ATELIER) info > $(DEMO)/info.json
	@echo "== crawl the fixture shop on 127.0.0.1 into image + bag-of-words records"
	$(NODE) dist/fixtures/serve.js --site $(FIXTURES)/site --port $(DEMO_PORT) --crawl-delay 0 > $(DEMO)/server.url & server=$$!; \
	  trap "kill $$server" EXIT; \
	  for i in $$(seq 50); do [ -s $(DEMO)/server.url ] && break; sleep 0.1; done; \
	  $(ATELIER) crawl-tokenize --sitemap "$$(head -1 $(DEMO)/server.url)sitemap.xml" --host-delay 0 --images $(DEMO)/images \
	    -o $(DEMO)/samples.ndjson --vocab $(DEMO)/vocab.ndjson
	@echo "== weak supervision: train the CNN to predict a word of its bag, then tag and embed"
	$(ATELIER) train-weak -i $(DEMO)/samples.ndjson --vocab $(DEMO)/vocab.ndjson -o $(DEMO)/weak.model \
	  $(DEMO_TOWER) --loss full --epochs 10 --lr 0.05 --epoch-size 2048 --negatives 20 --seed 3
	$(ATELIER) tag -m $(DEMO)/weak.model -i $(DEMO)/samples.ndjson --k 5 > $(DEMO)/tags.ndjson
	$(ATELIER) embed -m $(DEMO)/weak.model -i $(FIXTURES)/images.ndjson -o $(DEMO)/images.npy --skipped $(DEMO)/skipped.ndjson
	$(ATELIER) embed -m $(DEMO)/weak.model -i $(FIXTURES)/images.ndjson -o $(DEMO)/images-int8.npy --precision int8
	$(ATELIER) embed -m $(DEMO)/weak.model --words -o $(DEMO)/words.npy
	@echo "== retrieval: In-Shop protocol on the query/gallery split"
	$(ATELIER) eval-retrieval -p $(FIXTURES)/list_eval_partition.txt -e $(DEMO)/images.npy --id-field image \
	  --baseline random --plot $(DEMO)/topk.png -o $(DEMO)/retrieval.json
	$(ATELIER) knn -q $(DEMO)/images.npy -k 10 --labels $(FIXTURES)/images.ndjson --label-field colour > $(DEMO)/knn.ndjson
	@echo "== facets (GILT): a silhouette head on the weak features, per-class F1, confusion, false negatives"
	$(ATELIER) train-classifier -i $(FIXTURES)/images.ndjson -l silhouette -f $(DEMO)/images.npy --epochs 30 \
	  -o $(DEMO)/silhouette.model --predictions $(DEMO)/silhouette.predictions.ndjson > $(DEMO)/silhouette.train.json
	$(ATELIER) eval-classifier -p $(DEMO)/silhouette.predictions.ndjson --split test --plot $(DEMO)/silhouette.confusion.png \
	  --false-negatives $(DEMO)/silhouette.false-negatives.ndjson > $(DEMO)/silhouette.eval.json
	@echo "== facets: fine-tune the weak tower on pattern, then classify images (corrupt ones answered with an error)"
	$(ATELIER) train-classifier -i $(FIXTURES)/images.ndjson -l pattern --mode finetune -t $(DEMO)/weak.model --epochs 4 \
	  -o $(DEMO)/pattern.model > $(DEMO)/pattern.train.json
	$(ATELIER) classify -m $(DEMO)/pattern.model $(FIXTURES)/site/images/p000{1,2,3}/1.jpg $(FIXTURES)/corrupt/*.jpg \
	  > $(DEMO)/pattern.classified.ndjson
	@echo "== similarity (DeepRank triplets, semi-hard negatives) from the weak tower, on the train items only"
	grep '"split":"train"' $(FIXTURES)/images.ndjson | sed 's|"image":"|"image":"$(CURDIR)/$(FIXTURES)/|' > $(DEMO)/train-images.ndjson
	$(ATELIER) train-triplet -i $(DEMO)/train-images.ndjson -t $(DEMO)/weak.model --epochs 5 -o $(DEMO)/triplet.model
	$(ATELIER) embed -m $(DEMO)/triplet.model -i $(FIXTURES)/images.ndjson --normalize -o $(DEMO)/triplet.npy
	$(ATELIER) eval-retrieval -p $(FIXTURES)/list_eval_partition.txt -e $(DEMO)/triplet.npy --id-field image --name triplet \
	  --compare $(DEMO)/retrieval.json --plot $(DEMO)/topk-triplet.png -o $(DEMO)/retrieval-triplet.json
	@echo "== GILT/TiefVision: locate the garment (patch classifier slid over the photo, box fitted to its map), then retrieve on the located crops"
	$(NODE) dist/fixtures/generate.js --scenes varied --products 100 --out $(DEMO)/scenes
	$(ATELIER) train-locate -i $(DEMO)/scenes/scenes.ndjson $(LOCATE_TOWER) --epochs 10 -o $(DEMO)/locate.model > $(DEMO)/locate.json
	$(ATELIER) locate -m $(DEMO)/locate.model -i $(DEMO)/scenes/scenes.ndjson > $(DEMO)/boxes.ndjson
	$(ATELIER) embed -m pixels -i $(DEMO)/scenes/scenes.ndjson --crop $(DEMO)/boxes.ndjson -o $(DEMO)/crops.npy
	$(ATELIER) embed -m pixels -i $(DEMO)/scenes/scenes.ndjson -o $(DEMO)/scenes-full.npy
	$(ATELIER) eval-retrieval -p $(DEMO)/scenes/scenes.ndjson -e $(DEMO)/scenes-full.npy --name whole -o $(DEMO)/retrieval-whole.json
	$(ATELIER) eval-retrieval -p $(DEMO)/scenes/scenes.ndjson -e $(DEMO)/crops.npy --name crops --compare $(DEMO)/retrieval-whole.json -o $(DEMO)/retrieval-crops.json
	@echo "== Stitch Fix: global + attention branches (spatial transformer, texture encoding) on multi-label train items; kNN vote, In-Shop top-k"
	$(ATELIER) train-attention -i $(DEMO)/train-images.ndjson -l silhouette,pattern,slim_cut,colour --input-shape 64x64 --scale 2 --width 8 \
	  --texture-dim 16 --hidden 32 --glimpse 6 --epochs 6 --lr 0.003 --batch 32 -o $(DEMO)/attention.model --predictions $(DEMO)/attention.predictions.ndjson > $(DEMO)/attention.json
	$(ATELIER) embed -m $(DEMO)/attention.model -i $(FIXTURES)/images.ndjson -o $(DEMO)/attention.npy
	$(ATELIER) eval-retrieval -p $(FIXTURES)/list_eval_partition.txt -e $(DEMO)/attention.npy --id-field image --metric euclidean --name attention \
	  --compare $(DEMO)/retrieval.json --plot $(DEMO)/topk-attention.png -o $(DEMO)/retrieval-attention.json
	$(ATELIER) knn -q $(DEMO)/attention.npy -k 10 --metric euclidean --labels $(FIXTURES)/images.ndjson --label-field pattern > $(DEMO)/knn-attention.ndjson
	@echo "== SizeNet: teacher labels from sales and returns, student on the first photo of each article"
	$(ATELIER) teacher-score $(FIXTURES)/sales/articles.ndjson -o $(DEMO)/teacher.ndjson
	grep '"view":1,' $(FIXTURES)/images.ndjson | sed 's|"image":"|"image":"$(CURDIR)/$(FIXTURES)/|' > $(DEMO)/first-views.ndjson
	$(ATELIER) embed -m $(DEMO)/weak.model -i $(DEMO)/first-views.ndjson --id-field product -o $(DEMO)/articles.npy
	$(ATELIER) train-sizenet -f $(DEMO)/articles.npy -t $(DEMO)/teacher.ndjson -o $(DEMO)/sizenet.model \
	  --tower $(DEMO)/weak.model --image-model $(DEMO)/sizenet-image.model --plots $(DEMO)/sizenet-plots --report $(DEMO)/sizenet.json > /dev/null
	$(ATELIER) predict-sizenet -m $(DEMO)/sizenet.model -f $(DEMO)/articles.npy > $(DEMO)/advice.ndjson
	@echo "== SizeNet end to end: a tower learns the teacher's labels from the photos, each sample weighted by w"
	$(ATELIER) train-classifier -i $(FIXTURES)/images.ndjson --join $(DEMO)/teacher.ndjson -l label --weight-field w --class-weight none \
	  --mode finetune --input-size 64 --width 8 --epochs 8 --patience 3 --lr 0.002 \
	  -o $(DEMO)/size-images.model --predictions $(DEMO)/size-images.predictions.ndjson > $(DEMO)/size-images.json
	@echo "== day-one advice for the new articles (no sales yet), and RISE maps of the 8 most likely size issues"
	grep '"new_article":true' $(FIXTURES)/truth.ndjson | grep -o '^{"id":"[^"]*"' | sed 's/^{"id":/"product":/' > $(DEMO)/new-products.txt
	grep -F -f $(DEMO)/new-products.txt $(FIXTURES)/images.ndjson | sed 's|"image":"|"image":"$(CURDIR)/$(FIXTURES)/|' > $(DEMO)/new-articles.ndjson
	$(ATELIER) classify -m $(DEMO)/size-images.model -i $(DEMO)/new-articles.ndjson > $(DEMO)/size-advice-new.ndjson
	$(ATELIER) classify -m $(DEMO)/size-images.model -i $(DEMO)/new-articles.ndjson --rank "size issue" --top 8 \
	  | $(ATELIER) rise -m $(DEMO)/size-images.model --class "size issue" -n 1000 --overlay $(DEMO)/rise --maps-dir $(DEMO)/rise-maps -o $(DEMO)/rise.ndjson
	@$(MAKE) --no-print-directory report
	@echo
	@echo "demo outputs are in $(DEMO)/:"
	@ls -1 $(DEMO) | sed 's/^/  /'
	@echo "open $(DEMO)/report/index.html; retrieval: $(DEMO)/retrieval.json, $(DEMO)/topk.png; size advice: $(DEMO)/size-advice-new.ndjson (images), $(DEMO)/advice.ndjson (feature student); RISE overlays: $(DEMO)/rise/"

# The t-SNE map and the HTML report from the outputs of `make demo`; prints the page's path.
# The locator of `make demo` on the Fashionpedia sample photos in ../shared/data (skipped when absent).
FASHIONPEDIA ?= ../shared/data/fashionpedia-sample/images
real-locate: build
	@if [ ! -d "$(FASHIONPEDIA)" ] || [ ! -f $(DEMO)/locate.model/model.json ]; then echo "real-locate: skipped ($(FASHIONPEDIA) or $(DEMO)/locate.model missing)"; exit 0; fi; \
	  $(ATELIER) locate -m $(DEMO)/locate.model $(FASHIONPEDIA)/*.jpg

# Issue 19's target for the locator (held-out mean IoU >= 0.7): the demo's locator trained on 400 products
# (800 photos) of varied scenes instead of 100, for 20 epochs instead of 10, with three stages (which the
# larger set rewards: 0.74 against 0.72 with two), then located on 200 photos of another seed (about 5
# minutes on 2 shared cores; bench/RESULTS.md).
LOCATE_QUALITY := out/locate-quality
locate-quality: build
	$(NODE) dist/fixtures/generate.js --scenes varied --seed 3 --products 400 --out $(LOCATE_QUALITY)/train
	$(NODE) dist/fixtures/generate.js --scenes varied --seed 4 --products 100 --out $(LOCATE_QUALITY)/unseen
	$(ATELIER) train-locate -i $(LOCATE_QUALITY)/train/scenes.ndjson $(LOCATE_TOWER) --stages 3 --epochs 20 --patience 20 --val-fraction 0 -o $(LOCATE_QUALITY)/locate.model > $(LOCATE_QUALITY)/locate.json
	$(ATELIER) locate -m $(LOCATE_QUALITY)/locate.model -i $(LOCATE_QUALITY)/unseen/scenes.ndjson -o $(LOCATE_QUALITY)/boxes.ndjson
	@$(NODE) -e 'const r = require("./$(LOCATE_QUALITY)/locate.json"); console.log(`locate-quality: held-out mean IoU $${r.test.meanIoU} on $${r.test.images} photos (train $${r.train.meanIoU})`)'

report: build
	@test -f $(DEMO)/images.npy || { echo "make report: no $(DEMO)/images.npy: run make demo first"; exit 2; }
	@echo "== a map of the weak features and one page that shows it all"
	$(ATELIER) tsne $(DEMO)/images.npy --sample 1000 --labels $(FIXTURES)/images.ndjson --label-field colour --png $(DEMO)/tsne.png -o $(DEMO)/tsne.ndjson
	$(ATELIER) report -o $(DEMO)/report --attention $(DEMO)/attention.predictions.ndjson --classifier $(DEMO)/silhouette.eval.json --false-negatives $(DEMO)/silhouette.false-negatives.ndjson \
	  --retrieval $(DEMO)/retrieval.json $(DEMO)/retrieval-triplet.json --knn $(DEMO)/knn.ndjson --images $(FIXTURES)/images.ndjson \
	  --tsne $(DEMO)/tsne.ndjson --rise $(DEMO)/rise.ndjson --boxes $(DEMO)/boxes.ndjson --train-log $(DEMO)/weak.model.log.json $(DEMO)/triplet.model.log.json $(DEMO)/size-images.model.log.json 

# GILT's loop on the demo's silhouette model: a labels database from its outputs (make review-db),
# the app to fix wrong tags (make review), then export, retrain, evaluate, import (make retrain ROUND=2).
REVIEW_DB := $(DEMO)/labels.sqlite
ROUND ?= 2
review-db: build
	@test -f $(DEMO)/silhouette.predictions.ndjson || { echo "make review-db: run make demo first"; exit 2; }
	rm -f $(REVIEW_DB) $(REVIEW_DB)-wal $(REVIEW_DB)-shm
	$(ATELIER) review import --db $(REVIEW_DB) --labels $(FIXTURES)/images.ndjson --label-field silhouette \
	  -p $(DEMO)/silhouette.predictions.ndjson --name silhouette-1 --knn $(DEMO)/knn.ndjson \
	  --partition $(FIXTURES)/list_eval_partition.ndjson --retrieval-name weak

review: build
	$(ATELIER) review --db $(REVIEW_DB)

retrain: build
	$(ATELIER) review export --db $(REVIEW_DB) -o $(DEMO)/relabelled.ndjson
	$(ATELIER) train-classifier -i $(DEMO)/relabelled.ndjson -l silhouette -f $(DEMO)/images.npy --epochs 30 \
	  -o $(DEMO)/silhouette-$(ROUND).model --predictions $(DEMO)/silhouette-$(ROUND).predictions.ndjson > $(DEMO)/silhouette-$(ROUND).train.json
	$(ATELIER) eval-classifier -p $(DEMO)/silhouette-$(ROUND).predictions.ndjson --split test > $(DEMO)/silhouette-$(ROUND).eval.json
	$(ATELIER) review import --db $(REVIEW_DB) -p $(DEMO)/silhouette-$(ROUND).predictions.ndjson --name silhouette-$(ROUND)

# Real-data targets (make real-weak, real-facets, real-teacher): bench/real.mk.
include bench/real.mk

clean:
	rm -rf dist out coverage $(FIXTURES)
