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

main_reqs=(requirements.txt requirements-test.txt)
for r in tests/requirements-*.txt; do
  [ "$r" != tests/requirements-prefect.txt ] && main_reqs+=("$r")
done
compile locks/main.txt "${main_reqs[@]}"
compile locks/prefect.txt tests/requirements-prefect.txt
compile locks/pip.txt locks/pip.in
echo "locks refreshed: $(grep -c '==' locks/main.txt) + $(grep -c '==' locks/prefect.txt) packages"
