PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_STORE := generated_data/demo.zarr

.PHONY: install test demo benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) cli.py generate --count 300 --size 512 --out $(DEMO_STORE)
	$(PY) cli.py info $(DEMO_STORE)

benchmark: install
	$(PY) benchmarks/generate.py

clean:
	rm -rf $(VENV) generated_data .pytest_cache
