# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Each creates or updates the local virtual environment (.venv) by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv demo test ui api bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv
	@echo "installing dependencies into $(VENV) (uv, ~25 s)..."
	@# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on CI) nothing is
	@# cached later, and every process would compile Dagster & co. again (~3 s each).
	@$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/marketing demo

test: venv
	$(BIN)/python -m pytest

ui: venv
	$(BIN)/marketing ui

api: venv
	$(BIN)/marketing api

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) data/demo .dagster_home
