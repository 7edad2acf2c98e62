PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_STORE := generated_data/demo-256.zarr
DEMO_RUN := generated_data/demo-run

.PHONY: install test test-napari napari napari-display napari-window demo benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

test: install
	$(PY) -m pytest -q

# The napari plugin's tests (tests/test_napari*.py) in their own venv: requirements.txt, the pinned
# extra (requirements-napari.txt) and this checkout, editable, so napari finds the plugin's manifest.
# napari draws with OpenGL: without a display, pytest-xvfb starts Xvfb (`apt-get install xvfb`) for the run.
# The display is checked first, before minutes of installing. `make napari` opens the GUI.
NAPARI_VENV := .venv-napari
NAPARI_PY := $(NAPARI_VENV)/bin/python
XVFB_SCREEN := -o xvfb_width=1280 -o xvfb_height=1024 -o xvfb_colordepth=24

napari-display:
	@test -n "$(DISPLAY)" || command -v Xvfb >/dev/null || { echo "error: no display and no Xvfb: napari needs OpenGL (sudo apt-get install xvfb; docs/napari.md)"; exit 1; }

$(NAPARI_VENV)/.installed: requirements.txt requirements-napari.txt pyproject.toml | napari-display
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(NAPARI_VENV)
	$(NAPARI_PY) -m pip install --quiet --upgrade pip
	$(NAPARI_PY) -m pip install --quiet -r requirements.txt -r requirements-napari.txt
	$(NAPARI_PY) -m pip install --quiet --no-deps -e .
	touch $@

test-napari: napari-display $(NAPARI_VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(NAPARI_PY) -m pytest -q $(XVFB_SCREEN) tests/test_napari*.py

# The GUI with the plugin, from .venv-napari (needs a display: docs/napari.md lists the system packages Qt needs).
napari: napari-window $(NAPARI_VENV)/.installed
	$(NAPARI_VENV)/bin/napari $(ARGS)

napari-window:
	@test -n "$(DISPLAY)" || { echo "error: no display (DISPLAY is empty): napari's window needs a desktop session or ssh -X"; exit 1; }

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
	rm -rf $(VENV) $(NAPARI_VENV) generated_data .pytest_cache
