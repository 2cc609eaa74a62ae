# Real-data runs (included from the Makefile; uses NODE, ATELIER from it). The data sets are read in
# place from REAL_DATA (../shared/data beside the repository) and never copied into the repository;
# each target stops with one line when they are absent. Sizes are chosen so each target runs in a few
# minutes on 2 cores. Outputs are files under REAL_OUT, so a re-run only redoes what is missing (they do
# not depend on the settings below: after changing one, remove REAL_OUT or the outputs it affects).
REAL_DATA ?= ../shared/data
REAL_OUT ?= out/real
REAL_MYNTRA := $(REAL_DATA)/fashion-product-images-small
REAL_FIT := $(REAL_DATA)/fit/renttherunway_fit.csv.gz
# crawl-tokenize stores each image once by its SHA-256; the store lives under REAL_OUT (ignored by git).
REAL_IMAGES ?= $(REAL_OUT)/images
# The weak tower on the 60x80 Myntra photos: 32 px, width 16 (128-d pooled features), the 500 most frequent words.
REAL_TOWER ?= --input-size 32 --width 16
REAL_WEAK_TRAIN ?= --top-k 500 --loss full --lr 0.05 --epochs 12 --epoch-size 4096 --patience 3 --seed 1
REAL_FACETS := articleType baseColour
REAL_FEATURES := weak random pixels
REAL_PROBE ?= --epochs 200 --patience 10 --lr 0.001 --seed 1
REAL_FINETUNE_EPOCHS ?= 4
# stderr of each step goes to a .stderr file beside its output; its tail is shown when the step fails.
REAL_LOG = 2> $(REAL_ERR) || { tail -5 $(REAL_ERR) >&2; exit 1; }
REAL_ERR = $(patsubst %/model.json,%,$@).stderr

.PHONY: real-weak real-teacher real-facets real-check-myntra real-check-fit

real-check-myntra:
	@test -f $(REAL_MYNTRA)/styles.csv || { echo "real data absent: no $(REAL_MYNTRA)/styles.csv (set REAL_DATA)"; exit 1; }

real-check-fit:
	@test -f $(REAL_FIT) || { echo "real data absent: no $(REAL_FIT) (set REAL_DATA)"; exit 1; }

# Titles only (productDisplayName): articleType and baseColour stay out of the bags of words, so the
# probes below measure what the images taught the tower, not a copied label.
$(REAL_OUT)/samples.ndjson: | build real-check-myntra
	mkdir -p $(REAL_OUT)
	$(ATELIER) crawl-tokenize --import $(REAL_MYNTRA)/styles.csv --id-field id --title-field productDisplayName --category-field '' --description-field '' \
	  --fields title --image-field image --image-base $(REAL_MYNTRA)/images --images $(REAL_IMAGES) --restart \
	  -o $@ --vocab $(REAL_OUT)/vocab.ndjson --stats $(REAL_OUT)/crawl-stats.json

$(REAL_OUT)/weak.model/model.json: $(REAL_OUT)/samples.ndjson | build
	@echo "== train-weak on $$(wc -l < $<) Myntra images (title words), $(REAL_TOWER) $(REAL_WEAK_TRAIN)"
	$(ATELIER) train-weak -i $< --vocab $(REAL_OUT)/vocab.ndjson -o $(REAL_OUT)/weak.model $(REAL_TOWER) $(REAL_WEAK_TRAIN) $(REAL_LOG)
	grep 'epoch [0-9]* loss' $(REAL_ERR)

# The same tower and seed, (almost) never trained: --stop-after takes no 0, so one 32-image step at
# lr 1e-9 (the later options win; BatchNorm's moving statistics see that one batch).
$(REAL_OUT)/random.model/model.json: $(REAL_OUT)/samples.ndjson | build
	$(ATELIER) train-weak -i $< --vocab $(REAL_OUT)/vocab.ndjson -o $(REAL_OUT)/random.model $(REAL_TOWER) $(REAL_WEAK_TRAIN) \
	  --epochs 1 --epoch-size 32 --lr 1e-9 --checkpoint $(REAL_OUT)/random.model.checkpoint $(REAL_LOG)

$(REAL_OUT)/%.npy: $(REAL_OUT)/%.model/model.json
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) embed -m $(REAL_OUT)/$*.model -i $(REAL_OUT)/samples.ndjson -o $@ $(REAL_LOG)

$(REAL_OUT)/pixels.npy: $(REAL_OUT)/samples.ndjson | build
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) embed -m pixels -i $< -o $@ $(REAL_LOG)

# A linear head on frozen features (balanced class weights; test split = 20% of the products by hash;
# Adam at lr 0.001 with patience 10: at the default 0.01 the validation loss is lowest after an epoch or two).
define REAL_PROBE_RULE
$(REAL_OUT)/probe-$(1)-$(2).json: $(REAL_OUT)/$(1).npy
	$$(ATELIER) train-classifier -i $$(REAL_MYNTRA)/styles.csv --id-field id -l $(2) -f $$< $$(REAL_PROBE) \
	  -o $$(REAL_OUT)/probe-$(1)-$(2).model --report $$@ > /dev/null $$(REAL_LOG)
endef
$(foreach m,$(REAL_FEATURES),$(foreach f,$(REAL_FACETS),$(eval $(call REAL_PROBE_RULE,$(m),$(f)))))

REAL_PROBES := $(foreach m,$(REAL_FEATURES),$(foreach f,$(REAL_FACETS),$(REAL_OUT)/probe-$(m)-$(f).json))

# real-weak (issue 6): weak tower on the 5,000 Myntra images; linear probes on articleType and baseColour
# with its features vs the same tower untrained vs raw pixels (16x16); training and embedding images/s.
real-weak: build real-check-myntra $(REAL_OUT)/weak.model/model.json $(REAL_OUT)/weak.npy $(REAL_OUT)/random.npy $(REAL_OUT)/pixels.npy $(REAL_PROBES)
	$(NODE) dist/bench/real-summary.js weak --dir $(REAL_OUT) --probe '$(REAL_PROBE)'
	@echo "real-weak results: $(REAL_OUT)/weak-results.json and $(REAL_OUT)/weak-results.md (model $(REAL_OUT)/weak.model, epoch log $(REAL_OUT)/weak.model.log.json)"

# Fine-tuning reads images: records with absolute image paths and both labels.
$(REAL_OUT)/labelled.ndjson: $(REAL_OUT)/samples.ndjson | build
	$(NODE) dist/bench/real-summary.js join-labels --dir $(REAL_OUT) --styles $(REAL_MYNTRA)/styles.csv

$(REAL_OUT)/finetune-%.json: $(REAL_OUT)/labelled.ndjson $(REAL_OUT)/weak.model/model.json
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) train-classifier -i $< -l $* --mode finetune -t $(REAL_OUT)/weak.model \
	  --epochs $(REAL_FINETUNE_EPOCHS) --seed 1 -o $(REAL_OUT)/finetune-$*.model --report $@ > /dev/null $(REAL_LOG)

# real-facets (issue 9): accuracy and macro-F1 for (a) a raw-pixel head, (b) a head on the real-weak
# features (both from real-weak), (c) the weak tower fine-tuned end to end for REAL_FINETUNE_EPOCHS epochs.
real-facets: real-weak $(foreach f,$(REAL_FACETS),$(REAL_OUT)/finetune-$(f).json)
	$(NODE) dist/bench/real-summary.js facets --dir $(REAL_OUT) --finetune-epochs $(REAL_FINETUNE_EPOCHS) --probe '$(REAL_PROBE)'
	@echo "real-facets results: $(REAL_OUT)/facets-results.json and $(REAL_OUT)/facets-results.md"

# real-teacher (issue 5): SizeNet's teacher on all 192,544 RentTheRunway rentals (a rental with fit small
# or large counts as a size return; category from the file; monthly buckets from review_date).
real-teacher: build real-check-fit
	mkdir -p $(REAL_OUT)
	$(NODE) dist/bench/real-summary.js time $(REAL_OUT)/teacher.time -- $(ATELIER) teacher-score --id-col item_id --date-col review_date \
	  --returned-col fit --returned-values small,large --kept-values fit $(REAL_FIT) -o $(REAL_OUT)/teacher.ndjson 2> $(REAL_OUT)/teacher.summary.txt
	head -4 $(REAL_OUT)/teacher.summary.txt
	$(NODE) dist/bench/real-summary.js teacher --dir $(REAL_OUT) --input $(REAL_FIT)
	@echo "real-teacher results: $(REAL_OUT)/teacher-results.json and $(REAL_OUT)/teacher-results.md (labels $(REAL_OUT)/teacher.ndjson)"

# real-fashion-mnist (issue 9): a quick real sanity run of train-classifier --mode finetune on Fashion-MNIST
# (Debian package dataset-fashion-mnist, read in place). A class-balanced subset of the idx files becomes PNG
# files and records.ndjson; each record's group is chosen so train-classifier's hash split puts Fashion-MNIST's
# own t10k images in the test split and its training images in train or validation. A CNN is trained from
# scratch (unweighted loss: the subset is balanced) and scored by eval-classifier on the test split; the
# baseline is a linear head on the raw 28x28 pixels.
REAL_FASHION_DATA ?= /usr/share/datasets/fashion-mnist
REAL_FASHION := $(REAL_OUT)/fashion-mnist
REAL_FASHION_TRAIN ?= 6000
REAL_FASHION_TEST ?= 1000
REAL_FASHION_TOWER ?= --input-size 32 --width 16
REAL_FASHION_TRAINING ?= --epochs 10 --patience 3 --seed 1
REAL_FASHION_PIXELS ?= --pixels-size 28 --lr 0.001 --epochs 100 --patience 5 --seed 1
REAL_FASHION_INPUT = -i $(REAL_FASHION)/records.ndjson -l label --group-field group --labels-order $(REAL_FASHION)/labels-order.txt --class-weight none

.PHONY: real-fashion-mnist real-check-fashion-mnist

real-check-fashion-mnist:
	@test -f $(REAL_FASHION_DATA)/train-images-idx3-ubyte.gz || { echo "real data absent: no $(REAL_FASHION_DATA)/train-images-idx3-ubyte.gz (apt-get install dataset-fashion-mnist, or set REAL_FASHION_DATA)"; exit 1; }

$(REAL_FASHION)/records.ndjson: | build real-check-fashion-mnist
	$(NODE) dist/bench/fashion-mnist.js convert --data $(REAL_FASHION_DATA) --out $(REAL_FASHION) --train $(REAL_FASHION_TRAIN) --test $(REAL_FASHION_TEST)

$(REAL_FASHION)/finetune.json: $(REAL_FASHION)/records.ndjson | build
	@echo "== train-classifier --mode finetune on Fashion-MNIST, $(REAL_FASHION_TOWER) $(REAL_FASHION_TRAINING)"
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) train-classifier $(REAL_FASHION_INPUT) --mode finetune $(REAL_FASHION_TOWER) $(REAL_FASHION_TRAINING) \
	  -o $(REAL_FASHION)/finetune.model --predictions $(REAL_FASHION)/finetune-predictions.ndjson --report $@ > /dev/null $(REAL_LOG)
	grep 'epoch [0-9]* loss' $(REAL_ERR)
	cut -d' ' -f1-3 /proc/loadavg > $@.load

$(REAL_FASHION)/finetune-eval.json: $(REAL_FASHION)/finetune.json | build
	$(ATELIER) eval-classifier -p $(REAL_FASHION)/finetune-predictions.ndjson --split test --labels-order $(REAL_FASHION)/labels-order.txt -o $@ \
	  --plot $(REAL_FASHION)/finetune-confusion.png --false-negatives $(REAL_FASHION)/finetune-false-negatives.ndjson --title 'Fashion-MNIST test, fine-tuned CNN' $(REAL_LOG)

$(REAL_FASHION)/pixels.json: $(REAL_FASHION)/records.ndjson | build
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) train-classifier $(REAL_FASHION_INPUT) --tower pixels $(REAL_FASHION_PIXELS) \
	  -o $(REAL_FASHION)/pixels.model --report $@ > /dev/null $(REAL_LOG)

real-fashion-mnist: build real-check-fashion-mnist $(REAL_FASHION)/finetune-eval.json $(REAL_FASHION)/pixels.json
	$(NODE) dist/bench/fashion-mnist.js summary --dir $(REAL_FASHION) \
	  --settings 'fine-tune $(REAL_FASHION_TOWER) $(REAL_FASHION_TRAINING); baseline --tower pixels $(REAL_FASHION_PIXELS); both --class-weight none'
	@echo "real-fashion-mnist results: $(REAL_OUT)/fashion-mnist-results.json and $(REAL_OUT)/fashion-mnist-results.md (confusion $(REAL_FASHION)/finetune-confusion.png)"

# real-weak-44k, real-weak-amazon, real-weak-both (issue 17): weak towers at 64-96 px on myntra-44k (titles
# only: articleType, baseColour, gender and usage stay out of the bags), on amazon-tops-16k (crawled-style
# titles), or on both (one vocabulary over both sources). The validation split of train-weak is the 20% of
# products whose id hashes lowest, the same products train-classifier holds out as its test split, so the
# probes score products the tower never trained on. Probes always run on the myntra-44k images (the
# amazon tower is then scored on another shop's photos), for: the weak tower, the same tower untrained,
# the pretrained backbone frozen (mobilenetv2 runs), raw pixels.
#   REAL_RUN_TOWER  mobilenetv2: the nsfwjs MobileNetV2 (import-backbone --from nsfwjs), REAL_HEAD_EPOCHS
#                   epochs of the word matrix alone, then all fine-tuned; resnet18: ResNet-18 from scratch
#   REAL_SIZE       input side in pixels (64-96)
#   REAL_LIMIT      first N products of each set (0: all; myntra-44k has 44,072, amazon-tops-16k 16,018)
#   REAL_EPOCHS x REAL_EPOCH_SIZE samples of training; REAL_WORKERS training threads
# The default budget (12,000 products, 4 x 2,048 samples, one of them head-only) at 96 px for mobilenetv2 (its frozen
# features probe +0.12 articleType over 64 px; 10 fine-tune images/s, about 30 minutes of 2 cores), 64 px for the
# towers from scratch. OVERNIGHT=1: all products, 96 px, 30 x 16,384 samples (hours on 2 cores; a few on 16).
# e.g. make real-weak-44k; make real-weak-44k REAL_RUN_TOWER=resnet18; make real-weak-amazon OVERNIGHT=1
ifeq ($(OVERNIGHT),1)
REAL_SIZE ?= 96
REAL_LIMIT ?= 0
REAL_EPOCHS ?= 30
REAL_EPOCH_SIZE ?= 16384
REAL_HEAD_EPOCHS ?= 2
endif
REAL_SIZE ?= $(if $(filter mobilenetv2,$(or $(REAL_RUN_TOWER),mobilenetv2)),96,64)
REAL_LIMIT ?= 12000
REAL_EPOCHS ?= 4
REAL_EPOCH_SIZE ?= 2048
REAL_HEAD_EPOCHS ?= 1
REAL_WORKERS ?= 2
REAL_RUN_TOWER ?= mobilenetv2
REAL_SET ?= myntra-44k
REAL_44K := $(REAL_DATA)/myntra-44k
REAL_AMAZON := $(REAL_DATA)/amazon-tops-16k
REAL_BACKBONE ?= $(REAL_OUT)/nsfwjs-mobilenetv2
# The vocabulary and held-out split train-weak and the word2vec baseline share.
REAL_RUN_SPLIT ?= --top-k 1000 --group-field id --val-fraction 0.2
# --val-images: each epoch scores 2,000 of the held-out images (P@1's standard error about 0.01), not all
# of them (8,861 of myntra-44k: about 4 minutes of one thread per epoch at 96 px on MobileNetV2).
REAL_RUN_WORDS ?= $(REAL_RUN_SPLIT) --loss full --batch 32 --patience 2 --seed 1 --val-images 2000
# No --freeze-bn: with the ImageNet BatchNorm statistics frozen, 64 px thumbnails gave P@1 0.000 after one
# fine-tune epoch (lr 0.02, --backbone-lr 0.5); in training mode BatchNorm adapts to them (P@1 0.15 after 512 samples).
ifeq ($(REAL_RUN_TOWER),mobilenetv2)
REAL_RUN_START = --tower mobilenetv2 --backbone $(REAL_BACKBONE) --head-epochs $(REAL_HEAD_EPOCHS) --lr 0.01
REAL_RUN_FEATURES := weak random backbone pixels
else
REAL_RUN_START = --tower $(REAL_RUN_TOWER) --lr 0.05
REAL_RUN_FEATURES := weak random pixels
endif
# REAL_RUN_FEATURES='weak pixels' REAL_REFERENCE=<run dir of the same tower on myntra-44k> skips recomputing the
# untrained and backbone features (they do not depend on the training set) and reports that run's rows.
REAL_REFERENCE ?=
# REAL_TORCH=1 (resnet18 only; real-weak-torch sets it): also the PyTorch reference of the same run, scored as 'torch'.
ifeq ($(REAL_TORCH),1)
REAL_RUN_FEATURES += torch
endif
# REAL_RUN_STAGES=1: also the stage features (embed --layer stages: the last layer at each resolution of the
# tower, averaged and concatenated; colour survives in the early stages, which the pooled features lose) of the
# weak tower and, for mobilenetv2 runs, of the frozen backbone: 'weak-stages' and 'backbone-stages' rows.
# REAL_RUN_STAGES=max: those, and the same by mean and max (embed --layer stages-max): 'weak-stages-max' and
# 'backbone-stages-max' rows (twice the columns: the probes take about twice as long).
ifneq ($(filter 1 max,$(REAL_RUN_STAGES)),)
REAL_RUN_FEATURES += weak-stages $(if $(filter mobilenetv2,$(REAL_RUN_TOWER)),backbone-stages)
endif
ifeq ($(REAL_RUN_STAGES),max)
REAL_RUN_FEATURES += weak-stages-max $(if $(filter mobilenetv2,$(REAL_RUN_TOWER)),backbone-stages-max)
endif
# REAL_RESUME_FROM=<run dir of the same set, tower and settings with fewer REAL_EPOCHS>: continue that run from its
# checkpoint (train-weak --resume: the same result as one run of REAL_EPOCHS) instead of starting again; the summary
# times only the epochs after it. e.g. make real-weak-44k REAL_LIMIT=0 REAL_EPOCHS=8 REAL_EPOCH_SIZE=8192 \
#   REAL_RUN_FEATURES='weak pixels' REAL_REFERENCE=out/real/myntra-44k-0/mobilenetv2-96px-4x8192 REAL_RESUME_FROM=out/real/myntra-44k-0/mobilenetv2-96px-4x8192
REAL_RESUME_FROM ?=
REAL_RUN_UNTRAINED := --head-epochs 1 --epochs 1 --epoch-size 32 --lr 0.01 --val-images 64
REAL_RUN_FACETS := articleType baseColour gender usage
# One folder per training set and limit (its samples and vocabulary), one per run inside it.
REAL_SET_DIR = $(REAL_OUT)/$(1)-$(REAL_LIMIT)
REAL_PROBE_DIR := $(call REAL_SET_DIR,myntra-44k)
REAL_RUN_DIR := $(call REAL_SET_DIR,$(REAL_SET))/$(REAL_RUN_TOWER)-$(REAL_SIZE)px-$(REAL_EPOCHS)x$(REAL_EPOCH_SIZE)
REAL_RUN_TRAIN = -i $(call REAL_SET_DIR,$(REAL_SET))/samples.ndjson --vocab $(call REAL_SET_DIR,$(REAL_SET))/vocab.ndjson $(REAL_RUN_WORDS) --input-size $(REAL_SIZE)
REAL_HEAD = $(if $(filter 0,$(REAL_LIMIT)),cat,head -n $$(($(REAL_LIMIT) + 1)))

.PHONY: real-weak-44k real-weak-amazon real-weak-both real-weak-torch real-weak-run real-weak-colour real-check-44k real-check-amazon

real-check-44k:
	@test -f $(REAL_44K)/products.csv || { echo "real data absent: no $(REAL_44K)/products.csv (set REAL_DATA)"; exit 1; }

real-check-amazon:
	@test -f $(REAL_AMAZON)/products.csv || { echo "real data absent: no $(REAL_AMAZON)/products.csv (set REAL_DATA)"; exit 1; }

real-weak-44k: real-check-44k
	$(MAKE) real-weak-run REAL_SET=myntra-44k
real-weak-amazon: real-check-44k real-check-amazon
	$(MAKE) real-weak-run REAL_SET=amazon-tops-16k
real-weak-both: real-check-44k real-check-amazon
	$(MAKE) real-weak-run REAL_SET=both
# The from-scratch ResNet-18 run on myntra-44k with its PyTorch reference beside it (same budget variables).
real-weak-torch: real-check-44k
	$(MAKE) real-weak-run REAL_SET=myntra-44k REAL_RUN_TOWER=resnet18 REAL_TORCH=1

# The first REAL_LIMIT rows of each products.csv (a copy of the table under REAL_OUT, never the images).
$(call REAL_SET_DIR,myntra-44k)/samples.ndjson: | build
	mkdir -p $(@D)
	$(REAL_HEAD) $(REAL_44K)/products.csv > $(@D)/products.csv
	$(ATELIER) crawl-tokenize --import $(@D)/products.csv --id-field id --title-field productDisplayName --category-field '' --description-field '' \
	  --fields title --image-field image --image-base $(REAL_44K) --images $(REAL_IMAGES) --restart \
	  -o $@ --vocab $(@D)/vocab.ndjson --stats $(@D)/crawl-stats.json 2> $(@D)/crawl.stderr

$(call REAL_SET_DIR,amazon-tops-16k)/samples.ndjson: | build
	mkdir -p $(@D)
	$(REAL_HEAD) $(REAL_AMAZON)/products.csv > $(@D)/products.csv
	$(ATELIER) crawl-tokenize --import $(@D)/products.csv --id-field asin --title-field title --category-field '' --description-field '' \
	  --fields title --image-field image --image-base $(REAL_AMAZON) --images $(REAL_IMAGES) --restart \
	  -o $@ --vocab $(@D)/vocab.ndjson --stats $(@D)/crawl-stats.json 2> $(@D)/crawl.stderr

# Both sources: the records side by side, one vocabulary (counts and document frequencies summed).
$(call REAL_SET_DIR,both)/samples.ndjson: $(call REAL_SET_DIR,myntra-44k)/samples.ndjson $(call REAL_SET_DIR,amazon-tops-16k)/samples.ndjson
	mkdir -p $(@D)
	cat $^ > $@
	$(NODE) dist/bench/real-summary.js merge-vocab -o $(@D)/vocab.ndjson $(patsubst %/samples.ndjson,%/vocab.ndjson,$^)

$(REAL_BACKBONE)/model.json: | build
	$(ATELIER) import-backbone --from nsfwjs -o $(REAL_BACKBONE)

$(REAL_RUN_DIR)/weak.model/model.json: $(call REAL_SET_DIR,$(REAL_SET))/samples.ndjson $(if $(filter mobilenetv2,$(REAL_RUN_TOWER)),$(REAL_BACKBONE)/model.json)
	mkdir -p $(REAL_RUN_DIR)
	@echo "== train-weak on $(REAL_SET) ($$(wc -l < $<) images), $(REAL_RUN_START) $(REAL_RUN_TRAIN) --epochs $(REAL_EPOCHS) --epoch-size $(REAL_EPOCH_SIZE) --workers $(REAL_WORKERS)"
	cut -d' ' -f1-3 /proc/loadavg > $(REAL_RUN_DIR)/weak.load-before
	$(if $(REAL_RESUME_FROM),rm -rf $(REAL_RUN_DIR)/weak.model.checkpoint && cp -r $(REAL_RESUME_FROM)/weak.model.checkpoint $(REAL_RUN_DIR)/weak.model.checkpoint)
	$(if $(REAL_RESUME_FROM),$(NODE) dist/bench/real-summary.js resumed-after --checkpoint $(REAL_RUN_DIR)/weak.model.checkpoint --out $(REAL_RUN_DIR)/weak.resumed-after,rm -f $(REAL_RUN_DIR)/weak.resumed-after)
	$(NODE) dist/bench/real-summary.js time $(REAL_RUN_DIR)/weak.time -- $(ATELIER) train-weak $(REAL_RUN_TRAIN) $(REAL_RUN_START) --epochs $(REAL_EPOCHS) --epoch-size $(REAL_EPOCH_SIZE) \
	  --workers $(REAL_WORKERS) $(if $(REAL_RESUME_FROM),--resume) -o $(REAL_RUN_DIR)/weak.model $(REAL_LOG)
	cut -d' ' -f1-3 /proc/loadavg > $(REAL_RUN_DIR)/weak.load-after
	grep 'epoch [0-9]* loss' $(REAL_ERR)

# Untrained: the same tower and seed from scratch; backbone: the pretrained start, never trained (its
# pooled features are what embed writes). One head-only epoch of 32 samples trains the word matrix alone,
# so the tower keeps its initial weights (--stop-after takes no 0).
$(REAL_RUN_DIR)/random.model/model.json: $(call REAL_SET_DIR,$(REAL_SET))/samples.ndjson
	mkdir -p $(REAL_RUN_DIR)
	$(ATELIER) train-weak $(REAL_RUN_TRAIN) --tower $(REAL_RUN_TOWER) $(REAL_RUN_UNTRAINED) -o $(REAL_RUN_DIR)/random.model \
	  --checkpoint $(REAL_RUN_DIR)/random.model.checkpoint $(REAL_LOG)

$(REAL_RUN_DIR)/backbone.model/model.json: $(call REAL_SET_DIR,$(REAL_SET))/samples.ndjson $(REAL_BACKBONE)/model.json
	mkdir -p $(REAL_RUN_DIR)
	$(ATELIER) train-weak $(REAL_RUN_TRAIN) --tower mobilenetv2 --backbone $(REAL_BACKBONE) $(REAL_RUN_UNTRAINED) -o $(REAL_RUN_DIR)/backbone.model \
	  --checkpoint $(REAL_RUN_DIR)/backbone.model.checkpoint $(REAL_LOG)

$(REAL_RUN_DIR)/%.npy: $(REAL_RUN_DIR)/%.model/model.json $(REAL_PROBE_DIR)/samples.ndjson
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) embed -m $(REAL_RUN_DIR)/$*.model -i $(REAL_PROBE_DIR)/samples.ndjson -o $@ $(REAL_LOG)
$(REAL_RUN_DIR)/%-stages.npy: $(REAL_RUN_DIR)/%.model/model.json $(REAL_PROBE_DIR)/samples.ndjson
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) embed -m $(REAL_RUN_DIR)/$*.model --layer stages -i $(REAL_PROBE_DIR)/samples.ndjson -o $@ $(REAL_LOG)
$(REAL_RUN_DIR)/%-stages-max.npy: $(REAL_RUN_DIR)/%.model/model.json $(REAL_PROBE_DIR)/samples.ndjson
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) embed -m $(REAL_RUN_DIR)/$*.model --layer stages-max -i $(REAL_PROBE_DIR)/samples.ndjson -o $@ $(REAL_LOG)

# The PyTorch reference: the same records, vocabulary, held-out split, word sampling, crops, loss, optimiser,
# schedule and sample budget on REAL_WORKERS threads; it embeds the myntra-44k records as embed does.
REAL_TORCH_PYTHON ?= /usr/bin/python3
$(REAL_RUN_DIR)/torch.npy: $(call REAL_SET_DIR,$(REAL_SET))/samples.ndjson $(REAL_PROBE_DIR)/samples.ndjson
	mkdir -p $(REAL_RUN_DIR)
	$(NODE) dist/bench/real-summary.js time $@.time -- $(REAL_TORCH_PYTHON) bench/train_weak_torch.py --samples $< --vocab $(call REAL_SET_DIR,$(REAL_SET))/vocab.ndjson \
	  $(REAL_RUN_WORDS) $(REAL_RUN_START) --input-size $(REAL_SIZE) --epochs $(REAL_EPOCHS) --epoch-size $(REAL_EPOCH_SIZE) --threads $(REAL_WORKERS) \
	  --embed $(REAL_PROBE_DIR)/samples.ndjson --out $@ > $@.json 2> $@.stderr || { tail -5 $@.stderr >&2; exit 1; }
	grep 'epoch [0-9]* loss' $@.stderr

$(REAL_PROBE_DIR)/pixels.npy: $(REAL_PROBE_DIR)/samples.ndjson
	$(NODE) dist/bench/real-summary.js time $@.time -- $(ATELIER) embed -m pixels -i $< -o $@ $(REAL_LOG)

# Features of the photos alone, no model: kept beside the probe records and shared by every run. 'colours'
# (bench/colour-histogram.ts; name it in REAL_RUN_FEATURES): the joint RGB histogram of the product's pixels, the
# reference for how much of baseColour the photos' colours give a probe (the same images and order as pixels).
REAL_SHARED_FEATURES := pixels colours
$(REAL_PROBE_DIR)/colours.npy: $(REAL_PROBE_DIR)/pixels.npy
	$(NODE) dist/bench/real-summary.js time $@.time -- $(NODE) dist/bench/colour-histogram.js --ids $(REAL_PROBE_DIR)/pixels.ids.ndjson -o $@ $(REAL_LOG)

# Linear probes on the myntra-44k products (test split: the lowest 20% of id hashes, held out of train-weak too).
# lbfgs (bench/probe.ts, src/lib/facets/linear-probe.ts): logistic regression on standardised features fitted to
# convergence, L2 chosen on the validation split, as scikit-learn's LogisticRegression (bench/probe_sklearn.py is
# its peer). adam: train-classifier's head (REAL_PROBE), the probe of the runs before 2026-12-03 13:00; on 1280-d
# features it stops after an epoch or two and under-fits (backbone articleType 0.49 vs 0.58 at 64 px).
REAL_RUN_PROBE_SOLVER ?= lbfgs
REAL_RUN_PROBE_L2 ?= 1e-3,1e-4
ifeq ($(REAL_RUN_PROBE_SOLVER),adam)
REAL_RUN_PROBE_TEXT = train-classifier head, balanced class weights, $(REAL_PROBE)
REAL_RUN_PROBE_CMD = $(ATELIER) train-classifier -i $(REAL_PROBE_DIR)/products.csv --id-field id -l $(3) -f $< $(REAL_PROBE) -o $(@:.json=.model) --report $@ > /dev/null
else
REAL_RUN_PROBE_TEXT = bench/probe.js: logistic regression on standardised features, full-batch L-BFGS, balanced class weights, L2 from {$(REAL_RUN_PROBE_L2)} by validation accuracy
REAL_RUN_PROBE_CMD = $(NODE) dist/bench/probe.js -i $(REAL_PROBE_DIR)/products.csv --id-field id -l $(3) -f $< --l2 $(REAL_RUN_PROBE_L2) --report $@
endif
define REAL_RUN_PROBE_RULE
$(1)/probe-$(2)-$(3).json: $(1)/$(2).npy
	$$(call REAL_RUN_PROBE_CMD,,,$(3)) $$(REAL_LOG)
endef
$(foreach m,$(filter-out $(REAL_SHARED_FEATURES),$(REAL_RUN_FEATURES)),$(foreach f,$(REAL_RUN_FACETS),$(eval $(call REAL_RUN_PROBE_RULE,$(REAL_RUN_DIR),$(m),$(f)))))
$(foreach m,$(REAL_SHARED_FEATURES),$(foreach f,$(REAL_RUN_FACETS),$(eval $(call REAL_RUN_PROBE_RULE,$(REAL_PROBE_DIR),$(m),$(f)))))

REAL_RUN_PROBES := $(foreach m,$(REAL_RUN_FEATURES),$(foreach f,$(REAL_RUN_FACETS),$(if $(filter $(REAL_SHARED_FEATURES),$(m)),$(REAL_PROBE_DIR),$(REAL_RUN_DIR))/probe-$(m)-$(f).json))

# Retrieval of held-out myntra-44k products sharing articleType and baseColour (eval-retrieval: top-k accuracy
# and mAP; real-summary: P@k), the word neighbours of REAL_WORDS in the word matrix, and a t-SNE map of
# REAL_TSNE held-out images on the weak features (points by articleType, and thumbnails).
REAL_WORDS ?= black blue red white pink green navy grey shirt tshirt jeans dress kurta shoes watch handbag socks striped printed casual
REAL_TSNE ?= 1000
# The map's images: held-out products of this folder's myntra-44k rows (a REAL_LIMIT of 4,000 holds out only
# 797; any limit's held-out products are held out of every run, the split being by id hash).
REAL_TSNE_DIR ?= $(REAL_PROBE_DIR)
$(REAL_OUT)/%/heldout.ndjson: $(REAL_OUT)/%/samples.ndjson | build
	$(NODE) dist/bench/real-summary.js heldout --dir $(@D) --tsne $(REAL_TSNE)

define REAL_RUN_RETRIEVAL_RULE
$(1)/retrieval-$(2).json: $(1)/$(2).npy $$(REAL_PROBE_DIR)/heldout.ndjson
	$$(ATELIER) eval-retrieval -p $$(REAL_PROBE_DIR)/heldout.ndjson -e $$< -k 1,5,10 --baseline random --name $(2) -o $$@ $$(REAL_LOG)
	$$(NODE) dist/bench/real-summary.js retrieval-precision --features $$< --partition $$(REAL_PROBE_DIR)/heldout.ndjson --out $(1)/retrieval-$(2).precision.json
endef
$(foreach m,$(filter-out $(REAL_SHARED_FEATURES),$(REAL_RUN_FEATURES)),$(eval $(call REAL_RUN_RETRIEVAL_RULE,$(REAL_RUN_DIR),$(m))))
$(foreach m,$(REAL_SHARED_FEATURES),$(eval $(call REAL_RUN_RETRIEVAL_RULE,$(REAL_PROBE_DIR),$(m))))
REAL_RUN_RETRIEVAL := $(foreach m,$(REAL_RUN_FEATURES),$(if $(filter $(REAL_SHARED_FEATURES),$(m)),$(REAL_PROBE_DIR),$(REAL_RUN_DIR))/retrieval-$(m).json)

$(REAL_RUN_DIR)/words.npy: $(REAL_RUN_DIR)/weak.model/model.json
	$(ATELIER) embed -m $(REAL_RUN_DIR)/weak.model --words -o $@ $(REAL_LOG)

$(REAL_RUN_DIR)/word-neighbours.ndjson: $(REAL_RUN_DIR)/words.npy
	$(ATELIER) knn -q $< -k 8 > $@.tmp $(REAL_LOG)
	mv $@.tmp $@

$(REAL_RUN_DIR)/tsne-weak.npy: $(REAL_RUN_DIR)/weak.model/model.json $(REAL_TSNE_DIR)/heldout.ndjson
	$(ATELIER) embed -m $(REAL_RUN_DIR)/weak.model -i $(REAL_TSNE_DIR)/heldout-tsne.ndjson -o $@ $(REAL_LOG)

$(REAL_RUN_DIR)/tsne-weak.ndjson: $(REAL_RUN_DIR)/tsne-weak.npy
	$(ATELIER) tsne $< --labels $(REAL_TSNE_DIR)/heldout-tsne.ndjson --label-field articleType --style points --size 1200 \
	  --title "weak features, $$(wc -l < $(REAL_TSNE_DIR)/heldout-tsne.ndjson) held-out myntra-44k images, by articleType" --png $(REAL_RUN_DIR)/tsne-weak-articleType.png -o $@.tmp $(REAL_LOG)
	$(ATELIER) tsne $< --style thumbnails --size 2000 --png $(REAL_RUN_DIR)/tsne-weak-thumbnails.png -o $(REAL_RUN_DIR)/tsne-weak-thumbnails.ndjson 2>> $(REAL_ERR)
	mv $@.tmp $@

# Word semantics (report 3.6): word-triplet accuracy (eval-words, data/fashion-thesaurus.json) of the weak model's
# word matrix against word2vec trained on the same bags (train-weak's training products only: the same split).
# 20 epochs: on myntra-44k titles 5 epochs scored 0.732 and 20 scored 0.787 (400-d: 0.730, 0.785), so the baseline is the stronger one.
REAL_W2V ?= --dim 100 --epochs 20 --seed 1
$(REAL_RUN_DIR)/word2vec.npy: $(call REAL_SET_DIR,$(REAL_SET))/samples.ndjson
	mkdir -p $(REAL_RUN_DIR)
	$(ATELIER) train-word2vec -i $< --vocab $(call REAL_SET_DIR,$(REAL_SET))/vocab.ndjson $(REAL_RUN_SPLIT) $(REAL_W2V) -o $@ $(REAL_LOG)

$(REAL_RUN_DIR)/words-weak.json: $(REAL_RUN_DIR)/weak.model/model.json
	$(ATELIER) eval-words -m $(REAL_RUN_DIR)/weak.model > $@.tmp $(REAL_LOG)
	mv $@.tmp $@

$(REAL_RUN_DIR)/words-word2vec.json: $(REAL_RUN_DIR)/word2vec.npy
	$(ATELIER) eval-words --words $< > $@.tmp $(REAL_LOG)
	mv $@.tmp $@

REAL_RUN_EXTRAS := $(REAL_RUN_RETRIEVAL) $(REAL_RUN_DIR)/word-neighbours.ndjson $(REAL_RUN_DIR)/tsne-weak.ndjson $(REAL_RUN_DIR)/words-weak.json $(REAL_RUN_DIR)/words-word2vec.json

real-weak-run: build $(REAL_RUN_DIR)/weak.model/model.json $(REAL_RUN_PROBES) $(REAL_RUN_EXTRAS)
	$(NODE) dist/bench/real-summary.js weak-run --dir $(REAL_RUN_DIR) --pixels-dir $(REAL_PROBE_DIR) --set $(REAL_SET) --features '$(REAL_RUN_FEATURES)' --words '$(REAL_WORDS)' \
	  $(if $(REAL_REFERENCE),--reference $(REAL_REFERENCE)) \
	  --probe '$(REAL_RUN_PROBE_TEXT)' --command 'make real-weak-run REAL_SET=$(REAL_SET) REAL_RUN_TOWER=$(REAL_RUN_TOWER)$(if $(REAL_TORCH), REAL_TORCH=$(REAL_TORCH)) REAL_SIZE=$(REAL_SIZE) REAL_LIMIT=$(REAL_LIMIT) REAL_EPOCHS=$(REAL_EPOCHS) REAL_EPOCH_SIZE=$(REAL_EPOCH_SIZE) REAL_HEAD_EPOCHS=$(REAL_HEAD_EPOCHS) REAL_WORKERS=$(REAL_WORKERS) REAL_RUN_PROBE_SOLVER=$(REAL_RUN_PROBE_SOLVER)$(if $(REAL_RESUME_FROM), REAL_RESUME_FROM=$(REAL_RESUME_FROM))' \
	  --w2v '$(REAL_RUN_SPLIT) $(REAL_W2V)' --settings '$(REAL_RUN_START) $(REAL_RUN_WORDS) --input-size $(REAL_SIZE) --epochs $(REAL_EPOCHS) --epoch-size $(REAL_EPOCH_SIZE) --workers $(REAL_WORKERS)'
	$(NODE) dist/bench/real-summary.js runs --root $(REAL_OUT)
	@echo "results: $(REAL_RUN_DIR)/weak-results.json and $(REAL_RUN_DIR)/weak-results.md; every run so far, one row each: $(REAL_OUT)/weak-runs.md"

# Colour on the second domain: myntra-44k's baseColour (46 overlapping names) is hard for every feature, so
# real-weak-colour probes a run's weak features, the frozen backbone and raw pixels on the amazon-tops-16k photos
# for the one basic colour family (13) their free-text `color` field names (real-summary colour-families), on
# the same held-out products as train-weak on that set. Run it after a run, with the same variables, e.g.
#   make real-weak-colour REAL_SET=amazon-tops-16k REAL_LIMIT=0 REAL_EPOCHS=4 REAL_EPOCH_SIZE=8192 REAL_REFERENCE=<a myntra-44k run dir>
REAL_COLOUR_SET := $(call REAL_SET_DIR,amazon-tops-16k)
REAL_COLOUR_FEATURES ?= weak backbone pixels
REAL_COLOUR_AT = $(if $(filter pixels,$(1)),$(REAL_COLOUR_SET),$(if $(and $(REAL_REFERENCE),$(filter-out weak,$(1))),$(REAL_REFERENCE),$(REAL_RUN_DIR)))

$(REAL_COLOUR_SET)/colours.csv: $(REAL_COLOUR_SET)/samples.ndjson
	$(NODE) dist/bench/real-summary.js colour-families --input $(REAL_COLOUR_SET)/products.csv --id-field asin --field color --out $@

$(REAL_COLOUR_SET)/amazon-pixels.npy: $(REAL_COLOUR_SET)/samples.ndjson
	$(ATELIER) embed -m pixels -i $< -o $@ $(REAL_LOG)

define REAL_COLOUR_RULE
$(1)/amazon-$(2).npy: $(1)/$(2).model/model.json $$(REAL_COLOUR_SET)/samples.ndjson
	$$(ATELIER) embed -m $(1)/$(2).model -i $$(REAL_COLOUR_SET)/samples.ndjson -o $$@ $$(REAL_LOG)
endef
$(foreach m,$(filter-out pixels,$(REAL_COLOUR_FEATURES)),$(eval $(call REAL_COLOUR_RULE,$(call REAL_COLOUR_AT,$(m)),$(m))))

define REAL_COLOUR_PROBE_RULE
$(1)/probe-amazon-$(2)-colour.json: $(1)/amazon-$(2).npy $$(REAL_COLOUR_SET)/colours.csv
	$$(NODE) dist/bench/probe.js -i $$(REAL_COLOUR_SET)/colours.csv --id-field asin -l colour -f $$< --l2 $$(REAL_RUN_PROBE_L2) --report $$@ $$(REAL_LOG)
endef
$(foreach m,$(REAL_COLOUR_FEATURES),$(eval $(call REAL_COLOUR_PROBE_RULE,$(call REAL_COLOUR_AT,$(m)),$(m))))

real-weak-colour: build real-check-amazon $(foreach m,$(REAL_COLOUR_FEATURES),$(call REAL_COLOUR_AT,$(m))/probe-amazon-$(m)-colour.json)
	$(NODE) dist/bench/real-summary.js colour-run --dir $(REAL_RUN_DIR) --features '$(REAL_COLOUR_FEATURES)' --pixels-dir $(REAL_COLOUR_SET) $(if $(REAL_REFERENCE),--reference $(REAL_REFERENCE))
	@echo "results: $(REAL_RUN_DIR)/colour-results.md"
