# cnnspec: `make demo` and `make test` work on a fresh machine (they build .venv first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test browser editor check bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[all]'
	touch $(STAMP)

test: $(STAMP) browser editor
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The HTML diagram's test opens it in a headless browser. Where chromium is missing and this runs as
# root with apt-get (CI), install it (about 70 s); elsewhere that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "no chromium here: the browser test of cnnspec draw's HTML page will skip"

# The language server's editor test drives headless Neovim. Where nvim is missing and this runs as root
# with apt-get (CI), install Debian's neovim; elsewhere that one test skips and says why.
editor:
	@command -v nvim >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && apt-get install -y -qq neovim >/dev/null; } || \
	  echo "no neovim here: the headless Neovim test of cnnspec lsp will skip"

demo: $(STAMP)
	bash scripts/demo.sh

check: $(STAMP)
	$(VENV)/bin/cnnspec check specs/*.yaml

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
