# Two commands set everything up on a machine with Python 3.11+ and make:
#   make demo   create .venv, install, run the demo on bundled synthetic data
#   make test   create .venv if needed, install, run the whole suite (on every core)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := demo-output

.PHONY: demo test bench lint clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cascade demo -o $(DEMO)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n auto --dist worksteal tests

# The report's browser check (tests/test_report.py) opens report.html in headless Chromium.
# As root with apt-get (CI, a container) this installs Debian's chromium; elsewhere, without
# a chromium on PATH or CASCADE_CHROMIUM, the check is skipped and says so.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	   || command -v google-chrome >/dev/null 2>&1 || [ -n "$$CASCADE_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the report's browser check"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: the browser check will be skipped"; \
	else echo "no chromium: the report's browser check will be skipped"; fi

bench: $(STAMP)
	$(BIN)/python -m pytest -q bench --benchmark-only --benchmark-columns=min,mean,rounds

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .benchmarks
