# Two commands do everything on a fresh machine with only python3 and make:
#   make demo   installs, runs the pipeline on the local market emulator, prints where the report is
#   make test   installs and runs the test suite
# uv is used when it is on the PATH; otherwise it is bootstrapped into .tools/ with pip.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(CURDIR)/.tools/bin/uv
endif
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
# Trust the machine's certificate store (corporate or CI proxies), not only uv's bundled roots.
export UV_SYSTEM_CERTS ?= 1
WEEK ?=
SINCE ?= 2025-03-31
UNTIL ?=
PYTEST_ARGS ?=
# make demo PROFILE=real-world [BLOCKED=bybit]: the emulator answers as real users meet the APIs
PROFILE ?= default
BLOCKED ?= binance
# The suite runs on both cores (pytest-xdist, see pyproject.toml): every worker starts its own emulators on
# ephemeral ports and every test writes under its own tmp_path. worksteal: each worker starts on its half of the
# files in order (a module's shared fixture is built once) and takes tests from the other when it runs dry.
# PYTEST_XDIST= (empty) runs in one process. Three workers on the two cores were measured and not kept: 26 min 39 s
# against 24-28 min, with 9% more CPU (the long tests' servers and emulators then compete for the cores).
PYTEST_XDIST ?= -n 2 --dist worksteal

.PHONY: install demo test test-every-week every-week-counts dev lint emulator clean backfill bench bench-storage

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: every installed module compiled once here, so that no interpreter compiles them again where
# PYTHONDONTWRITEBYTECODE is set (CI images often set it): each process the pipeline and the tests start (CLI,
# dagster dev, step and worker processes) imports about 0.9 s faster.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: .venv/.synced

demo: install
	.venv/bin/crypto-weekly demo $(if $(WEEK),--week $(WEEK)) --profile $(PROFILE) --blocked-venue $(BLOCKED)

# The demo's week on the distributed deployment, all on 127.0.0.1: PostgreSQL, Redis, the S3 server, the
# emulator, the Dagster daemon and two Celery workers (docs/deploy.md); everything stopped at the end.
.PHONY: demo-distributed
demo-distributed: install
	.venv/bin/crypto-weekly demo-distributed $(if $(WEEK),--week $(WEEK))

test: install
	.venv/bin/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

# Every emulator week rendered and checked (make test renders every 6th week and the named ones), and the counts.
test-every-week: install
	CRYPTO_WEEKLY_EVERY_WEEK=1 .venv/bin/python -m pytest tests/test_every_week.py $(PYTEST_ARGS)

every-week-counts: install
	.venv/bin/python -m tests._every_week $(if $(OUT),--out $(OUT))

# make backfill [SINCE=2025-03-31] [UNTIL=2025-11-17] [EMULATOR=1]: the days as one run, then every week
backfill: install
	.venv/bin/crypto-weekly backfill --since $(SINCE) $(if $(UNTIL),--until $(UNTIL)) $(if $(EMULATOR),--emulator)

dev: install
	.venv/bin/crypto-weekly dev

emulator: install
	.venv/bin/crypto-weekly emulator --profile $(PROFILE) --blocked-venue $(BLOCKED)

bench: install
	.venv/bin/python -m bench.run

# The event log's cost in the daily backfill on SQLite and on Postgres instance storage (about 19 minutes; needs
# postgresql): section 6 of bench/RESULTS.md, rewritten in place.
bench-storage: install
	.venv/bin/python -m bench.instance_storage --days 60 --repeats 3 --profile --results bench/RESULTS.md

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

clean:
	rm -rf warehouse .dagster_home/storage .dagster_home/history .dagster_home/schedules .dagster_home/logs
