# Two commands set everything up: `make demo` (the main job on built-in data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0

.PHONY: demo test lint venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# the CPU build first, so the package's torch requirement is already met and no CUDA build is pulled
	$(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PIP) install --quiet -e '.[dev,export]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/stvad demo --out runs/demo

test: venv
	$(VENV)/bin/ruff check src tests bench experiments tools
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
