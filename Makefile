# Set-up and the main jobs. `make test` is what CI runs (.ci/run).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
BLENDER_EXT := $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py
PLYFILE_WHEEL := wheels/plyfile-1.0.3-py3-none-any.whl

.PHONY: install speech-tools lint test test-fast bench bench-worker bench-streaming bench-blender bench-tuning extension demo demo-biwi results seeds clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

speech-tools:
	bash scripts/install-speech-tools.sh

lint: install
	$(VENV)/bin/ruff check --no-cache .

test: install speech-tools lint $(PLYFILE_WHEEL)
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) bench/whole_process.py
	$(PY) bench/inference.py

bench-worker: install
	$(PY) bench/worker_path.py

bench-streaming: install
	$(PY) bench/streaming.py

$(PLYFILE_WHEEL): | install
	$(PIP) download --quiet --no-deps --only-binary=:all: --dest wheels plyfile==1.0.3

extension: install $(PLYFILE_WHEEL)
	$(PY) $(BLENDER_EXT) validate .
	mkdir -p dist
	$(PY) $(BLENDER_EXT) build --source-dir . --output-dir dist

bench-blender: install
	$(PY) bench/blender_write.py

bench-tuning: install
	$(PY) bench/tuning.py

# The README's results section and figures, from scratch (resumable; WORK keeps every step).
results: WORK ?= build/results
results: install speech-tools
	$(PY) scripts/results.py --work $(WORK)

# Table 2 variants over five seeds, on the work folder of `make results` (about 2 h on 2 cores).
seeds: WORK ?= build/results
seeds: install
	$(PY) scripts/seeds.py --work $(WORK) --seeds 0 1 2 3 4 --run full:full --run two-stage:two-stage --run baseline:baseline

# The bundled model on the bundled sample clip (samples/demo_speech.wav): no speech tools needed.
demo: OUT ?= out
demo: install
	$(VENV)/bin/talking-head demo --bundle weights/demo --out $(OUT)
	@echo "demo outputs are in $(OUT)/: open $(OUT)/demo.blend in Blender and press play"

# A demo model on the BIWI topology: demo corpus on BIWI.ply, then training with the demo encoders.
demo-biwi: OUT ?= out/biwi
demo-biwi: install speech-tools
	$(VENV)/bin/talking-head demo-biwi --template $(BIWI) --out $(OUT) --config scripts/demo_training.json

ifneq ($(filter demo-biwi,$(MAKECMDGOALS)),)
ifeq ($(BIWI),)
$(error usage: make demo-biwi BIWI=path/to/BIWI.ply [OUT=dir])
endif
endif

clean:
	rm -rf $(VENV) out build dist wheels *.egg-info
