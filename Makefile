# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv when missing and install the project with pinned versions.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install demo test test-fast test-slow test-all bench-flows clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.cfg pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m facevae.train

# The default suite on both cores (pytest-xdist), the slowest tests listed at the end: 13 minutes on an idle
# 2-core machine (one process: 21 minutes).
test: install
	$(PY) -m pytest -m "not slow" -n 2 --durations=15

# The inner loop: unit and math tests only (no notebooks, trainings, subprocess jobs or slow checks), on both
# cores (pytest-xdist): under 3 minutes on an idle 2-core machine.
test-fast: install
	$(PY) -m pytest -m "not slow and not integration" -n 2

test-slow: install
	$(PY) -m pytest -m "slow"

test-all: install
	$(PY) -m pytest

# The MNIST planar-flow study (K = 0, 5, 10; PixelCNN decoder with a 5x5 window): 30 epochs (15,000 steps)
# of training per model, then IW-NLL with S = 5000 on the 10,000 test digits, scored digit by digit. Resumable:
# re-running continues each model's training and reuses finished evaluations. Needs ../shared/data/binarized_mnist.
BENCH_FLOWS_ARGS ?= --importance-samples 5000
bench-flows: install
	$(PY) benchmarks/flows_study.py --data-dir ../shared/data/binarized_mnist $(BENCH_FLOWS_ARGS) --out benchmarks/results

clean:
	rm -rf runs build *.egg-info
