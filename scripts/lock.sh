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

# The side environments (locks/environments.txt): lock name -> requirement file.
declare -A side=()
while read -r name _dir reqs; do
  [ -n "$name" ] && [[ "$name" != \#* ]] && side[$name]="$reqs"
done < locks/environments.txt
all="main pip galaxy ${!side[*]}"

# With arguments (main, pip, galaxy or a side environment's name) only those locks are refreshed; without, all.
wanted=" ${*:-$all} "
for lock in $wanted; do
  [[ " $all " == *" $lock "* ]] || { echo "unknown lock: $lock (known: $all)" >&2; exit 2; }
done
want() { [[ "$wanted" == *" $1 "* ]]; }

main_reqs=(requirements.txt requirements-test.txt)
for r in tests/requirements-*.txt; do
  [[ " ${side[*]} " == *" $r "* ]] || main_reqs+=("$r")
done
if want main; then compile locks/main.txt "${main_reqs[@]}"; fi
for name in "${!side[@]}"; do
  if want "$name"; then compile "locks/$name.txt" "${side[$name]}"; fi
done
if want pip; then compile locks/pip.txt locks/pip.in; fi
# galaxy-importer (make lint) has an environment of its own, so that its pins do not hold back .venv's packages.
if want galaxy; then compile locks/galaxy.txt locks/galaxy.in; fi
for lock in $wanted; do
  echo "locks/$lock.txt: $(grep -c '==' "locks/$lock.txt") packages"
done
