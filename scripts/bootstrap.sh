#!/usr/bin/env bash
# Installs what pgtidy's demo, tests and benchmarks need on a Debian 12 machine:
# PostgreSQL 15 with pg_repack (apt, when run as root and missing) and a Python venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(postgresql-15 postgresql-15-repack util-linux)
for list in tests/apt-*.txt; do
  [ -f "$list" ] || continue
  while read -r pkg; do
    pkg="${pkg%%#*}"; pkg="${pkg// /}"
    [ -n "$pkg" ] && apt_packages+=("$pkg")
  done < "$list"
done
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv "${missing[@]}" >/dev/null
  # The Debian package starts a cluster of its own; pgtidy's harness runs private clusters instead.
  if command -v pg_ctlcluster >/dev/null 2>&1; then pg_ctlcluster 15 main stop >/dev/null 2>&1 || true; fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-test.txt tests/requirements-*.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --upgrade pip
  reqs=(-r requirements-test.txt)
  for r in tests/requirements-*.txt; do [ -f "$r" ] && reqs+=(-r "$r"); done
  .venv/bin/pip install -q "${reqs[@]}"
  echo "$want" > "$stamp"
fi
echo "environment ready: .venv ($(.venv/bin/python --version)), PostgreSQL $(ls /usr/lib/postgresql | sort -n | tail -1)"
