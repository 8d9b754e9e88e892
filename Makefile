# pgtidy.maintenance — everyday commands.
#   make demo   prune a throwaway, realistic Dagster database with playbooks/prune.yml
#               (ORCHESTRATOR=airflow or prefect: a database written by the real Airflow 3 or Prefect 3)
#   make test   the whole test suite against real PostgreSQL, pg_repack, Dagster and ansible-playbook
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
# Two workers: the container tests (about ten minutes) run beside the rest. PYTEST_WORKERS= runs serially.
PYTEST_WORKERS ?= -n 2 --dist loadgroup

.PHONY: setup lock demo test unit lint sanity build changelog doc bench bench-steady bench-drain clean

setup:
	bash scripts/bootstrap.sh

# Re-resolves locks/*.txt from the requirement files (needs PyPI); commit both together.
lock:
	bash scripts/lock.sh

# ORCHESTRATOR=airflow (Airflow from .venv-airflow-3) or prefect (.venv-prefect) makes and prunes their database.
ORCHESTRATOR ?= dagster

demo: setup
	$(PY) demo/run_demo.py --orchestrator $(ORCHESTRATOR)

test: setup
	PGTIDY_PREFECT_PYTHON=$(CURDIR)/.venv-prefect/bin/python $(PY) -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

build: setup
	$(VENV)/bin/ansible-galaxy collection build --force --output-path build .

# Records the fragments in changelogs/fragments/ under galaxy.yml's version in changelogs/changelog.yaml
# (fragments are kept; edited ones are refreshed) and renders CHANGELOG.rst from it.
changelog: setup
	$(VENV)/bin/antsibull-changelog lint
	$(VENV)/bin/antsibull-changelog release --reload-plugins --refresh-fragments without-archives \
	  --ansible-doc-bin $(VENV)/bin/ansible-doc
	$(VENV)/bin/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	rm -f changelogs/.plugin-cache.yaml

doc: setup
	bash scripts/with-collection.sh $(VENV)/bin/ansible-doc pgtidy.maintenance.dagster_prune

# The whole tree from the collection root, as Galaxy and Automation Hub import run it; then their upload check
# (galaxy-importer, offline, from .venv-galaxy built from locks/galaxy.txt) on the tarball `make build` made.
lint: setup build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/with-collection.sh ansible-lint --offline --profile production
	bash scripts/galaxy-import.sh build/pgtidy-maintenance-$$(sed -n 's/^version: *//p' galaxy.yml).tar.gz

sanity: setup
	bash scripts/sanity.sh

# The throughput benchmarks; the last, airflow_prune against airflow db clean on 1,000,000 task instances with a
# concurrent writer, takes about 25 minutes on two shared cores (--task-instances 100000 for a quick look)
bench: setup
	$(PY) bench/prune_bench.py
	$(PY) bench/repack_vs_vacuum_full.py
	PGTIDY_PREFECT_PYTHON=$(CURDIR)/.venv-prefect/bin/python $(PY) bench/prefect_bench.py --levels --scaling
	PGTIDY_AIRFLOW_PYTHON=$(CURDIR)/.venv-airflow-3/bin/python $(PY) bench/airflow_bench.py

# 24 simulated months of a Dagster deployment pruned weekly (76 minutes for two lines on two shared cores):
# bench/steady_state.json and bench/steady_state.png
bench-steady: setup
	$(PY) bench/steady_state.py

# A 10-million-row event_logs (about 14 GB) drained run after run with the defaults and a concurrent writer, then
# repacked (hours on two shared cores): wall time, writer p99, WAL per row, sizes, the 131 GiB extrapolation
bench-drain: setup
	$(PY) bench/drain_bench.py --json bench/drain_bench.json

clean:
	rm -rf build .pytest_cache
