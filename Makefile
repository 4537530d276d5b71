# Every target creates the virtual environment itself on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BCX := $(VENV)/bin/bcx
PYTEST_ARGS ?=
ARGS ?=
QUICK ?=

.PHONY: all venv proto proto-check numbering numbering-check docs docs-check lint test \
	test-isolated demo bench postgres clean

all: test

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# Regenerate exchange/wire from proto/.
proto: venv
	$(PY) scripts/gen_proto.py

# Fails when exchange/wire differs from what proto/ generates.
proto-check: venv
	$(PY) scripts/gen_proto.py --check

# Regenerate exchange/data/cn_mobile_provinces.txt from the pinned phonenumbers' data.
numbering: venv
	$(PY) scripts/gen_numbering.py

numbering-check: venv
	$(PY) scripts/gen_numbering.py --check

# Rewrite the generated blocks of docs/ (field tables, the role table) from the code.
docs: venv
	$(PY) scripts/gen_docs.py

# Fails when a generated block of docs/ differs from what the code says, or is missing.
docs-check: venv
	$(PY) scripts/gen_docs.py --check

lint: venv proto-check numbering-check docs-check
	$(VENV)/bin/ruff check exchange nodes tests bench scripts migrations
	$(VENV)/bin/mypy
	@rm -f .schema-check.db
	BCX_DATABASE_URL=sqlite:///.schema-check.db $(VENV)/bin/alembic upgrade head
	BCX_DATABASE_URL=sqlite:///.schema-check.db $(VENV)/bin/alembic check
	@rm -f .schema-check.db

# PostgreSQL binaries for the storage tests (the tests start their own server).
postgres:
	@bash scripts/ensure_postgres.sh

test: venv proto-check numbering-check postgres
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# `make test` in a copy of the tracked files alone, in a new temporary directory with
# nothing beside it: what a stranger's clone gets.
test-isolated:
	@bash scripts/in_fresh_copy.sh $(MAKE) test PYTEST_ARGS="$(PYTEST_ARGS)"

demo: venv
	$(BCX) demo $(ARGS)

bench: venv
	$(PY) -m bench $(if $(QUICK),--quick,) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# A plain install, as a stranger gets it: build the wheel, install it into a fresh virtual
# environment in a temporary directory outside the checkout, and run `bcx --version` and
# `bcx demo --numbers 50` there from a temporary working directory.
.PHONY: wheel-check
wheel-check: venv
	BCX_WHEEL_CHECK=1 $(VENV)/bin/pytest tests/integration/test_plain_install.py -q -p no:cacheprovider
