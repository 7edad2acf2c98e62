PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_STORE := generated_data/demo-256.zarr
DEMO_RUN := generated_data/demo-run

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

# A 1,000-pair library at 256 px, then a few minutes of training of the small preset on it,
# ending with the test split's report table (the model beside the identity and bridge baselines).
demo: install
	$(PY) cli.py generate --count 1000 --size 256 --out $(DEMO_STORE)
	$(PY) cli.py info $(DEMO_STORE)
	rm -rf $(DEMO_RUN)
	$(PY) cli.py train --data $(DEMO_STORE) --out $(DEMO_RUN) --preset small --epochs 3

benchmark: install
	$(PY) benchmarks/generate.py

clean:
	rm -rf $(VENV) generated_data .pytest_cache
