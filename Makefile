# dlbook — the two commands a reader needs are `make book` and `make test`.
# The first use creates .venv (Python 3.11, pip) and installs requirements.txt and the dlbook package.

PYTHON  ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MATHJAX := book/_static/mathjax/tex-mml-chtml.js
MATHJAX_VERSION := 3.2.2
JB_FLAGS := -W -n --keep-going

.PHONY: book test unit notebooks site lab serve bench bench-build clean lint

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# MathJax is served from the site itself so that math renders without a CDN.
$(MATHJAX):
	rm -rf book/_static/mathjax.tmp && mkdir -p book/_static/mathjax.tmp
	cd book/_static/mathjax.tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	mkdir -p book/_static/mathjax.tmp/out/input/tex
	cp book/_static/mathjax.tmp/package/es5/tex-mml-chtml.js book/_static/mathjax.tmp/out/
	cp -r book/_static/mathjax.tmp/package/es5/output book/_static/mathjax.tmp/out/
	cp -r book/_static/mathjax.tmp/package/es5/input/tex/extensions book/_static/mathjax.tmp/out/input/tex/
	rm -rf book/_static/mathjax && mv book/_static/mathjax.tmp/out book/_static/mathjax && rm -rf book/_static/mathjax.tmp

## book: build the static site into _build/html (executes the chapters whose code or dependencies changed, in
## parallel; any error or warning fails)
book: $(STAMP) $(MATHJAX)
	DLBOOK_WIDGETS=static $(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "open _build/html/index.html"

## test: unit tests, every chapter executed once, the site build from those outputs and the browser checks
test: $(STAMP) $(MATHJAX)
	$(BIN)/python -m pytest tests --durations=15

unit: $(STAMP)
	$(BIN)/python -m pytest tests -m "not browser and not slow"

## notebooks: every chapter under nbval with live ipywidgets, as in JupyterLab (not part of `make test`)
notebooks: $(STAMP)
	$(BIN)/python -m pytest book --nbval-lax -p no:cacheprovider

## lab: open the chapters in JupyterLab with live sliders
lab: $(STAMP)
	$(BIN)/jupyter lab book/

## serve: serve the built site on http://127.0.0.1:8000
serve:
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory _build/html 8000

## bench: speed ratios against PyTorch and chapter run times (benchmarks/results/)
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

## bench-build: cold build, rebuilds, and (with ARGS=--test) the test suite, each a median of repeated runs
bench-build: $(STAMP) $(MATHJAX)
	$(BIN)/python benchmarks/build.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks book

clean:
	rm -rf _build .pytest_cache .hypothesis
