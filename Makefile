# The two commands a new machine needs: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: bench-scale setup run test test-fast lint format lock image deploy-manifests messages bench bench-history check-deploy clean-cluster

# Idempotent: the virtualenv is refreshed when requirements.lock changes; the control-plane binaries are built once
# per version into ~/.cache; migrations run every time (a no-op when current).
setup: $(VENV)/.installed
	$(BIN)/python manage.py compilemessages --ignore=.venv --verbosity 0
	$(BIN)/python -m tools.localcluster build >/dev/null
	$(BIN)/python manage.py migrate --verbosity 0

# Exactly the versions requirements.lock pins, checked against its hashes (`make lock` refreshes it from
# pyproject.toml). The project itself is not installed: everything runs from this folder.
$(VENV)/.installed: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	touch $@

# Two locks from pyproject.toml: everything the tests need, and the production subset the image installs, pinned
# to the same versions (it is compiled with the first as its constraint).
lock: $(VENV)/.installed
	$(BIN)/pip-compile --quiet --strip-extras --extra dev --extra postgres --generate-hashes --allow-unsafe \
	  --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --extra postgres --generate-hashes --allow-unsafe \
	  --no-emit-find-links -c requirements.lock -o requirements-prod.lock pyproject.toml

# The plain manifests of deploy/ and the chart's RBAC template, rendered again from charts/kube-service-console and
# clusters/rbac.py (tests/integration/test_chart.py fails while they are out of date).
deploy-manifests: $(VENV)/.installed
	$(BIN)/python -m tools.deploy_manifests

# The container image (podman; on a Debian base made from Debian's packages: tools/image.py). IMAGE names it.
image: $(VENV)/.installed
	$(BIN)/python -m tools.image build $(if $(IMAGE),--tag $(IMAGE))

run: setup
	$(BIN)/python manage.py demo --kubeconfig "$$($(BIN)/python -m tools.localcluster up)" --url http://$(HOST):$(PORT)/
	@# The history recorder beside the development server (docs/history.md), stopped with it.
	$(BIN)/python manage.py record_history & recorder=$$!; trap 'kill $$recorder 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit and integration tests without the browser, load and fuzz tests: the loop to run while working (under a
# minute). Three pytest workers, each with its own control plane: the tests mostly wait on the API server, so
# three share the two cores well. `make test` runs them all, one at a time.
test-fast: setup lint
	$(BIN)/python -m pytest -n 3 -m "not browser and not load and not fuzz and not sso and not image" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmark: own control plane, temp database and gunicorn; writes docs/benchmarks.{md,json} (~6 min).
# BENCH_ARGS: --quick (2-minute smoke run into a temp folder), --strict (exit 1 when a target is missed).
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The history recorder's cost: own control plane and PostgreSQL, 10,000 Services, 10 label changes a second for
# 60 s; writes docs/benchmarks-history.json and the history section of docs/benchmarks.md (~5 min).
# BENCH_ARGS: --quick (1,000 Services, 20 s, into a temp folder).
bench-history: setup
	$(BIN)/python bench/history.py $(BENCH_ARGS)

# The console at scale: 20,000 Services in one namespace, 1,000 open list pages and 50 editors on the benchmark's
# gunicorn; writes docs/benchmarks-scale.json and the scale section of docs/benchmarks.md (~15 min, most of it the fill).
# BENCH_ARGS: --quick (2,000 Services, 100 pages, 5 editors, 10 s, into a temp folder).
bench-scale: setup
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

# Django's deployment checklist against production settings (throwaway secrets: only the settings are judged).
check-deploy: $(VENV)/.installed
	CONSOLE_ENV=production CONSOLE_ALLOWED_HOSTS=console.example.com \
	CONSOLE_SECRET_KEY="$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	CONSOLE_ENCRYPTION_KEYS="$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

# Refresh the zh-Hans catalog from the sources; then translate what `msgattrib --untranslated` lists.
messages: $(VENV)/.installed
	$(BIN)/python manage.py makemessages -l zh_Hans --no-obsolete \
	  --ignore=.venv --ignore=staticfiles --ignore=data --ignore=tests --ignore=bench --ignore=artifacts

clean-cluster: $(VENV)/.installed
	$(BIN)/python -m tools.localcluster down
