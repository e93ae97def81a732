# Two commands on a fresh machine (see README):  make serve   and   make test
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup serve demo test bench fuzz lint clean

# make serve PORT=8080 WORKERS=4
PORT ?= 8000
WORKERS ?= 1

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/tokenmall serve --port $(PORT) --workers $(WORKERS)

demo: $(STAMP)
	$(VENV)/bin/tokenmall demo

test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/python bench/settlement.py
	$(VENV)/bin/python bench/day_close.py
	$(VENV)/bin/python bench/console.py

# the suite's schemathesis test with many more examples per operation (a few minutes)
fuzz: $(STAMP)
	TOKENMALL_FUZZ_EXAMPLES=$${TOKENMALL_FUZZ_EXAMPLES:-200} $(VENV)/bin/pytest -q -p no:cacheprovider tests/api/test_schemathesis.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis tokenmall-demo.db*
