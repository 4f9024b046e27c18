# robot-annotate: `make annotate DATASET=droid` on a workstation, `make test` before you push.
# Every target installs what it needs first (idempotent: a second `make install` is instant).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.install-stamp
EXTRAS ?= models,tfds,sim,vlm,kinematics,view,dev

# LeRobot pins its own torch (< 2.11), torchvision and av: its own virtualenv, for `make conformance` only.
LEROBOT_VENV := .venv-lerobot
LEROBOT_STAMP := $(LEROBOT_VENV)/.install-stamp
LEROBOT_VERSION ?= 0.4.4

CHROMIUM ?= $(shell command -v chromium)
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

# One Prefect home and one API URL for prefect-server, deploy and worker (README "On a cluster"). The URL is
# exported to those three targets only: `make annotate` keeps Prefect's temporary local server.
export PREFECT_HOME ?= $(CURDIR)/.prefect
PREFECT_PORT ?= 4200
LOCAL_API_URL := http://127.0.0.1:$(PREFECT_PORT)/api
PREFECT_API_URL ?= $(LOCAL_API_URL)
prefect-server deploy worker: export PREFECT_API_URL := $(PREFECT_API_URL)
# The server's telemetry fails on offline machines and fills its log with errors.
prefect-server: export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export MPLBACKEND ?= Agg

.PHONY: help install labelstudio-venv lerobot-venv conformance browser-test test annotate review labelstudio prefect-server deploy worker \
        sample-data bench bench-gpu train clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

install: $(STAMP)  ## create .venv and install the suite (CPU torch, TFDS, pybullet, rerun-sdk, test tools)

$(LS_STAMP):
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --disable-pip-version-check "label-studio==$(LS_VERSION)"
	@touch $@

labelstudio-venv: $(LS_STAMP)  ## install the Label Studio server in its own virtualenv

test: install labelstudio-venv  ## run the test suite (starts real Prefect and Label Studio servers)
	$(VENV)/bin/pytest -q -p no:cacheprovider

$(LEROBOT_STAMP):
	@test -x $(LEROBOT_VENV)/bin/python || $(PYTHON) -m venv $(LEROBOT_VENV)
	$(LEROBOT_VENV)/bin/pip install --quiet --disable-pip-version-check "lerobot==$(LEROBOT_VERSION)"
	@touch $@

lerobot-venv: $(LEROBOT_STAMP)  ## install LeRobot in its own virtualenv (its own torch: about 5 min, 8.3 GB)

conformance: install lerobot-venv  ## LeRobot itself loads la's LeRobot folders (v3.0, and v2.1 through its converter)
	LEROBOT_PYTHON=$(CURDIR)/$(LEROBOT_VENV)/bin/python $(VENV)/bin/pytest -q -p no:cacheprovider tests/conformance

browser-test: install labelstudio-venv  ## the verification page in headless chromium (Playwright; apt-get install chromium): about 1.5 min
	@test -n "$(CHROMIUM)" || { echo "browser-test drives Debian's chromium: apt-get install chromium (or set CHROMIUM=/path)" >&2; exit 1; }
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[browser]"
	CHROMIUM=$(CHROMIUM) $(VENV)/bin/pytest -q -p no:cacheprovider -rs tests/browser

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

prefect-server: install  ## start a Prefect server at PREFECT_API_URL (127.0.0.1:PREFECT_PORT, 4200) with PREFECT_HOME=.prefect
	@test "$(PREFECT_API_URL)" = "$(LOCAL_API_URL)" || { echo "error: PREFECT_API_URL=$(PREFECT_API_URL) is not \
	this server's $(LOCAL_API_URL): unset it, or pick the port with PREFECT_PORT" >&2; exit 1; }
	@echo "Prefect server at PREFECT_API_URL=$(PREFECT_API_URL), PREFECT_HOME=$(PREFECT_HOME): make deploy and \
	make worker use both. Elsewhere (prefect deployment run): export PREFECT_API_URL=$(PREFECT_API_URL)"
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: install  ## register prefect.yaml's deployments and the process work pool on the server at PREFECT_API_URL
	@$(PY) -m pipelines.prefect_server "$(PREFECT_API_URL)"
	$(VENV)/bin/prefect work-pool create robot-annotate --type process --overwrite
	$(VENV)/bin/prefect --no-prompt deploy --all

worker: install  ## start a process worker for the robot-annotate pool, served by PREFECT_API_URL
	@$(PY) -m pipelines.prefect_server "$(PREFECT_API_URL)"
	$(VENV)/bin/prefect worker start --pool robot-annotate

sample-data: install  ## regenerate the embedded simulated sample (pybullet)
	$(PY) -m pipelines.sample.generator --out pipelines/sample/data --episodes 12 --seed 0

bench: install  ## reader throughput, la fidelity (sample, fit/report split), VLM prompt tokens, target-phrase accuracy, future encoder speed (CPU smoke), pixel fidelity and memory
	$(PY) -m benchmarks.readers
	$(PY) -m benchmarks.la_fidelity
	$(PY) -m benchmarks.la_fidelity --source resting
	$(PY) -m benchmarks.la_split
	$(PY) -m benchmarks.vlm_tokens --synthetic 20
	$(PY) -m benchmarks.vlm_tokens
	$(PY) -m benchmarks.phrase_accuracy
	$(PY) -m benchmarks.future_speed --smoke
	$(PY) -m benchmarks.pixel_fidelity
	$(PY) -m benchmarks.pixel_memory --frames 100 1000 10000

bench-gpu: install  ## every GPU measurement in one run, 10 min budget on one H100/H200 (DEVICE=cpu: the same table on CPU); OUT/bench-gpu/suite.md
	$(PY) -m benchmarks.gpu_suite --out $(OUT)/bench-gpu $(if $(DEVICE),--device $(DEVICE))

train: install  ## train a reference recipe: make train RECIPE=la DATA=outputs/la/sample-droid
	$(PY) -m trainer --recipe $(RECIPE) --data $(DATA) --steps $(STEPS) --out $(OUT)/checkpoints/$(RECIPE)

clean:  ## remove outputs, caches and the virtualenvs
	rm -rf $(VENV) $(LS_VENV) $(LEROBOT_VENV) $(OUT) .prefect .pytest_cache .labelstudio-data
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
