# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv when missing and install the project with pinned versions.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install demo test test-slow test-all clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.cfg pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m facevae.train

test: install
	$(PY) -m pytest -m "not slow"

test-slow: install
	$(PY) -m pytest -m "slow"

test-all: install
	$(PY) -m pytest

clean:
	rm -rf runs build *.egg-info
