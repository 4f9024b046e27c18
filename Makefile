# robot-annotate: `make annotate DATASET=droid` on a workstation, `make test` before you push.
# Every target installs what it needs first (idempotent: a second `make install` is instant).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.install-stamp
EXTRAS ?= models,tfds,sim,vlm,kinematics,dev

LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.install-stamp
LS_VERSION ?= 1.23.2
LS_PORT ?= 8080
LS_DATA ?= $(CURDIR)/.labelstudio-data
LABEL_STUDIO_USERNAME ?= admin@example.com
LABEL_STUDIO_PASSWORD ?= change-me-please
LABEL_STUDIO_USER_TOKEN ?= robot-annotate-local-token

DATASET ?= droid
PIPELINE ?=
OUT ?= outputs
LIMIT ?=
LOCATION ?=
RECIPE ?= la
STEPS ?= 200

export PREFECT_HOME ?= $(CURDIR)/.prefect
export MPLBACKEND ?= Agg

.PHONY: help install labelstudio-venv test annotate review labelstudio prefect-server deploy worker \
        sample-data bench bench-gpu train clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

install: $(STAMP)  ## create .venv and install the suite (CPU torch, TFDS, pybullet, test tools)

$(LS_STAMP):
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --disable-pip-version-check "label-studio==$(LS_VERSION)"
	@touch $@

labelstudio-venv: $(LS_STAMP)  ## install the Label Studio server in its own virtualenv

test: install labelstudio-venv  ## run the test suite (starts real Prefect and Label Studio servers)
	$(VENV)/bin/pytest -q -p no:cacheprovider

annotate: install  ## annotate DATASET [PIPELINE=gaze|pixel|future|la] [OUT=outputs] [LIMIT=n] [LOCATION=path]
	$(PY) -m pipelines annotate $(DATASET) --out $(OUT) \
	  $(if $(PIPELINE),--pipeline $(PIPELINE)) $(if $(LIMIT),--limit $(LIMIT)) $(if $(LOCATION),--location $(LOCATION))

review: install  ## pull verified annotations from Label Studio and rewrite the la dataset
	$(PY) -m pipelines review $(DATASET) --out $(OUT)

labelstudio: install labelstudio-venv  ## start Label Studio on 127.0.0.1:$(LS_PORT) (legacy API tokens, fresh data dir LS_DATA)
	@mkdir -p $(abspath $(OUT))
	LABEL_STUDIO_USERNAME=$(LABEL_STUDIO_USERNAME) LABEL_STUDIO_PASSWORD=$(LABEL_STUDIO_PASSWORD) \
	LABEL_STUDIO_USER_TOKEN=$(LABEL_STUDIO_USER_TOKEN) \
	$(PY) -m pipelines.labelstudio.server --port $(LS_PORT) --data-dir $(LS_DATA) --document-root $(abspath $(OUT))

prefect-server: install  ## start a Prefect server on 127.0.0.1:4200 (PREFECT_HOME=.prefect)
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

deploy: install  ## create the process work pool and register prefect.yaml's deployments
	$(VENV)/bin/prefect work-pool create robot-annotate --type process --overwrite
	$(VENV)/bin/prefect --no-prompt deploy --all

worker: install  ## start a process worker for the robot-annotate pool
	$(VENV)/bin/prefect worker start --pool robot-annotate

sample-data: install  ## regenerate the embedded simulated sample (pybullet)
	$(PY) -m pipelines.sample.generator --out pipelines/sample/data --episodes 12 --seed 0

bench: install  ## reader throughput, la fidelity, VLM prompt tokens, target-phrase accuracy, future encoder speed (CPU smoke), pixel fidelity and memory
	$(PY) -m benchmarks.readers
	$(PY) -m benchmarks.la_fidelity
	$(PY) -m benchmarks.la_fidelity --source resting
	$(PY) -m benchmarks.vlm_tokens
	$(PY) -m benchmarks.phrase_accuracy
	$(PY) -m benchmarks.future_speed --smoke
	$(PY) -m benchmarks.pixel_fidelity
	$(PY) -m benchmarks.pixel_memory --frames 100 1000 10000

bench-gpu: install  ## every GPU measurement in one run, 10 min budget on one H100/H200 (DEVICE=cpu: the same table on CPU); OUT/bench-gpu/suite.md
	$(PY) -m benchmarks.gpu_suite --out $(OUT)/bench-gpu $(if $(DEVICE),--device $(DEVICE))

train: install  ## train a reference recipe: make train RECIPE=la DATA=outputs/la/sample-droid
	$(PY) -m trainer --recipe $(RECIPE) --data $(DATA) --steps $(STEPS) --out $(OUT)/checkpoints/$(RECIPE)

clean:  ## remove outputs, caches and both virtualenvs
	rm -rf $(VENV) $(LS_VENV) $(OUT) .prefect .pytest_cache .labelstudio-data
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
