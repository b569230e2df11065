# Every target installs what it needs first (node_modules from the lock file), so a fresh clone needs no other step.
# Variables are optional; unset ones fall back to each command's own defaults (see `npx tsx cfgen.ts <cmd> --help`).
# Roots (data/, corpora/, runs/, models/) are this folder's unless CFGEN_DATA_ROOT, CFGEN_CORPORA_ROOT, CFGEN_RUNS_ROOT
# or CFGEN_MODELS_ROOT say otherwise; every command resolves them the same way (common/paths.ts).
SHELL := /bin/bash
# onnxruntime-node's postinstall would fetch CUDA binaries from outside the npm registry (offline here). npm 11
# already skips it (package.json "allowScripts"); this covers older npm. CUDA users: see docs/cluster.md.
export ONNXRUNTIME_NODE_INSTALL := skip
CFGEN := npx --no-install tsx cfgen.ts
# generate runs with a 1 MB young generation: far fewer full garbage collections per image (common/heap.ts says why)
GENERATE_NODE_OPTIONS := --max-semi-space-size=1
with_generate_options = NODE_OPTIONS="$(GENERATE_NODE_OPTIONS) $${NODE_OPTIONS:-}"
DATASET ?= synth-waterbirds
METHOD ?= cf-tile+f-random+sal@10

# Every variable reaches the shell single-quoted (a quote inside becomes '\''), so DATASET='x;touch f' is a
# dataset name, never a command.
q = '$(subst ','\'',$(1))'
opt = $(if $(2),--$(1) $(call q,$(2)))

.PHONY: help install test test-faults test-slurm typecheck dataset generate verify sample-grid inpainter train eval stress-test report \
        bench bench-generate bench-train bench-inpaint bench-roofline bench-parallel experiment pretrain-demo clean

help:
	@echo "make train [METHOD=cf-tile+f-random+sal@10] [DATASET=synth-waterbirds] [SEED=] [EPOCHS=] [BACKEND=] [RUN=]  train + evaluate; prints where eval.json went"
	@echo "make generate [DATASET=] [METHODS=a,b] [VARIANTS=K] [SIZE=] [SEED=] [WORKERS=] [MASK_FOREGROUND=1,3]   CF/F corpora"
	@echo "make dataset [DATASET=] [MASK_FOREGROUND=1,3]   build/ingest a dataset, write its source manifest (MASK_FOREGROUND: mask values that are the object)"
	@echo "make verify DATASET= [METHODS=]    re-hash corpora against their manifests"
	@echo "make sample-grid [DATASET=] [OUT=] contact sheet of originals, CF and F images"
	@echo "make export [METHODS=] [FORMAT=parquet|webdataset] [OUT=]  corpora as Parquet (Hugging Face datasets) or WebDataset shards"
	@echo "make inpainter [DATASET=]          train our ONNX inpainter (for cf-cagan)"
	@echo "make eval RUN=<run-id> [STRESS=1]  evaluate a run at its best-validation checkpoint (STRESS=1: also on the stress test)"
	@echo "make stress-test [DATASET=]        background stress-test variants of the test images (an eval corpus)"
	@echo "make report [RUNS='id id'] [NAME=] results tables, charts and figures in reports/<name>/ (default: every run)"
	@echo "make test                          the test suite (what CI runs, after make typecheck)"
	@echo "make typecheck                     strict TypeScript check (tsc --noEmit)"
	@echo "make test-faults [CASES='kill/ damage/']  fault-injection suite: kill -9, races, full disk, damage, hostile input, memory (docs/guarantees.md)"
	@echo "make test-slurm                    sharded generate on a local single-node Slurm cluster (root, slurm-wlm, munge)"
	@echo "make bench                         bench-generate, bench-train, bench-inpaint, bench-roofline (bench-parallel is separate: it wants an idle machine)"
	@echo "make experiment                    3-seed synth-waterbirds table (orig, F, CF, CF+F+Sal)"
	@echo "make pretrain-demo                 pretrain on synth-in9, export .npz/.safetensors, fine-tune on synth-waterbirds vs scratch (3 seeds)"

node_modules/.package-lock.json: package.json package-lock.json
	npm ci
	@touch $@

install: node_modules/.package-lock.json

test: install
	npx --no-install vitest run

# The fault-injection suite (scripts/faults/, docs/guarantees.md), what CI runs after `make test`: ~15 min on 2 cores.
# CASES: case ids or prefixes (kill/ race/ damage/ ...; `npx tsx scripts/faults/run.ts --list`); CFGEN_FAULTS_FULL=0
# leaves out the 100k-image memory point; CFGEN_FAULTS_SEED picks other kill points.
test-faults: install
	npx --no-install tsc --noEmit -p scripts/faults/tsconfig.json
	CFGEN_FAULTS_FULL="$${CFGEN_FAULTS_FULL:-1}" npx --no-install tsx scripts/faults/run.ts $(foreach c,$(CASES),$(call q,$(c)))

typecheck: install
	npx --no-install tsc --noEmit -p .

# a real Slurm cluster on this machine: the shipped job array vs one process (docs/cluster.md)
test-slurm: install
	scripts/slurm/integration-test.sh

dataset: install
	$(CFGEN) dataset $(call q,$(DATASET)) $(call opt,seed,$(SEED)) $(call opt,size,$(SIZE)) $(call opt,mask-foreground,$(MASK_FOREGROUND))

generate: install
	$(with_generate_options) $(CFGEN) generate --dataset $(call q,$(DATASET)) $(call opt,methods,$(METHODS)) $(call opt,variants,$(VARIANTS)) \
	  $(call opt,size,$(SIZE)) $(call opt,seed,$(SEED)) $(call opt,workers,$(WORKERS)) $(call opt,mask-foreground,$(MASK_FOREGROUND))

verify: install
	$(CFGEN) verify --dataset $(call q,$(DATASET)) $(call opt,methods,$(METHODS))

sample-grid: install
	$(CFGEN) sample-grid --dataset $(call q,$(DATASET)) $(call opt,methods,$(METHODS)) $(call opt,out,$(OUT))

# FORMAT: parquet (Hugging Face datasets, the default) | webdataset; OUT: the output folder when one corpus is exported
# (default <corpus>/export/<format>/); SHARD_ROWS: rows per shard (1000). docs/export.md
.PHONY: export
export: install
	$(CFGEN) export --dataset $(call q,$(DATASET)) $(call opt,methods,$(METHODS)) $(call opt,format,$(FORMAT)) $(call opt,out,$(OUT)) \
	  $(call opt,shard-rows,$(SHARD_ROWS))

inpainter: install dataset
	$(CFGEN) inpainter --dataset $(call q,$(DATASET)) $(call opt,steps,$(STEPS)) $(call opt,seed,$(SEED))

train: install
	$(CFGEN) train --method $(call q,$(METHOD)) --dataset $(call q,$(DATASET)) $(call opt,seed,$(SEED)) $(call opt,epochs,$(EPOCHS)) \
	  $(call opt,backend,$(BACKEND)) $(call opt,run-id,$(RUN))

eval: install
	@test -n $(call q,$(RUN)) || { echo "error: give RUN=<run-id> (a folder under runs/)"; exit 2; }
	$(CFGEN) eval --run $(call q,$(RUN)) $(call opt,backend,$(BACKEND)) $(if $(STRESS),--stress)

stress-test: install
	$(CFGEN) stress-test --dataset $(call q,$(DATASET)) $(call opt,size,$(SIZE)) $(call opt,seed,$(SEED))

# RUNS: run ids separated by spaces (each reaches the command as its own quoted argument); none = every run
report: install
	$(CFGEN) report $(foreach r,$(RUNS),$(call q,$(r))) $(call opt,name,$(NAME)) $(call opt,backend,$(BACKEND))

bench: bench-generate bench-train bench-inpaint bench-roofline

bench-roofline: install
	npx --no-install tsx bench/roofline.ts

bench-parallel: install
	npx --no-install tsx bench/parallel.ts

bench-generate: install
	$(with_generate_options) npx --no-install tsx bench/generate.ts

# PyTorch on CPU is the peer we compare against; Debian's build is importable from /usr/bin/python3 only.
bench-train: install
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || { (apt-get update -qq && apt-get install -y -qq python3-torch) >/dev/null 2>&1 || echo "note: python3-torch not installable here; the PyTorch comparison is skipped"; }
	npx --no-install tsx bench/train.ts

bench-inpaint: install
	npx --no-install tsx bench/inpaint.ts

experiment: install
	npx --no-install tsx bench/experiment-waterbirds.ts

# pretraining → export → fine-tuning, offline; resumable; writes its table into docs/benchmarks.md
pretrain-demo: install
	npx --no-install tsx bench/pretrain-demo.ts

clean:
	rm -rf corpora runs
