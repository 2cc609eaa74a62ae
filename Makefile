# atelier: `make demo` installs and runs the whole pipeline on generated fixtures; `make test` runs the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
NODE ?= node
ATELIER := $(NODE) bin/atelier
FIXTURES := fixtures/out
SEED ?= 1
DEMO := out/demo
SOURCES := $(shell find src test fixtures bench -name '*.ts' -not -path '*/out/*' 2>/dev/null) tsconfig.json

.PHONY: all install build fixtures test test-lib test-commands demo bench man man-check gpu clean real-teacher

all: build

# npm ci only when the lock file changed; the optional native tfjs packages are never installed here (see `make gpu`).
node_modules/.package-lock.json: package-lock.json package.json
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

# The suite: every test file under dist/test, two at a time (the machine has 2 cores).
test: build fixtures
	$(NODE) --test --test-concurrency=2 $$(find dist/test -name '*.test.js' | sort)

man: build
	$(NODE) dist/src/gen-man.js

man-check: build
	$(NODE) dist/src/gen-man.js --check

bench: build
	$(NODE) dist/bench/train-cnn.js

# On a CUDA box: the native GPU backend (downloads libtensorflow, so it is not part of npm ci).
gpu: install
	npm install --no-save @tensorflow/tfjs-node-gpu@4.22.0

demo: build fixtures
	@mkdir -p $(DEMO)
	$(ATELIER) info > $(DEMO)/info.json
	@echo
	@echo "demo outputs are in $(DEMO)/:"
	@ls -1 $(DEMO) | sed 's/^/  /'

clean:
	rm -rf dist out $(FIXTURES)
