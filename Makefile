# The two set-up commands of the README. Each installs what it needs on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install services-up services-down bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spendstream demo
	@echo "Web console: run '$(VENV)/bin/spendstream demo --serve' — the same demo, then the API stays up until Ctrl-C"
	@echo "and prints the console URL (http://127.0.0.1:18180/ui/) and a read key to sign in with (docs/console.md)."

test: $(STAMP)
	bash scripts/test.sh

bench: $(STAMP)
	$(PY) bench/run_all.py
