#!/usr/bin/env bash
# Refreshes the lock files in locks/ from the requirement files (see locks/README.md). Needs PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON="${PYTHON:-python3}"
tool="${TMPDIR:-/tmp}/pgtidy-lock-uv-$UV_VERSION"
[ -x "$tool/bin/uv" ] || { "$PYTHON" -m venv "$tool" && "$tool/bin/pip" install -q "uv==$UV_VERSION"; }

# The environments are built with Debian 12's CPython 3.11 on x86_64.
compile() {  # compile OUTPUT INPUT-FILES...
  local out="$1"; shift
  "$tool/bin/uv" pip compile --quiet --generate-hashes --no-header --index-url https://pypi.org/simple \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --output-file "$out" "$@"
}

# With arguments (main, prefect, pip, galaxy) only those locks are refreshed; without, all of them.
wanted=" ${*:-main prefect pip galaxy} "
for lock in $wanted; do
  case "$lock" in main|prefect|pip|galaxy) ;; *) echo "unknown lock: $lock" >&2; exit 2 ;; esac
done
want() { [[ "$wanted" == *" $1 "* ]]; }

main_reqs=(requirements.txt requirements-test.txt)
for r in tests/requirements-*.txt; do
  [ "$r" != tests/requirements-prefect.txt ] && main_reqs+=("$r")
done
if want main; then compile locks/main.txt "${main_reqs[@]}"; fi
if want prefect; then compile locks/prefect.txt tests/requirements-prefect.txt; fi
if want pip; then compile locks/pip.txt locks/pip.in; fi
# galaxy-importer (make lint) has an environment of its own, so that its pins do not hold back .venv's packages.
if want galaxy; then compile locks/galaxy.txt locks/galaxy.in; fi
for lock in main prefect pip galaxy; do
  if want "$lock"; then echo "locks/$lock.txt: $(grep -c '==' "locks/$lock.txt") packages"; fi
done
