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
# tests/requirements-prefect.txt goes into a venv of its own: Prefect needs a newer SQLAlchemy than
# dagster-postgres supports. The modules themselves need neither.
install_venv() {  # install_venv DIR REQUIREMENT-FILES...
  local dir="$1"; shift
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  local stamp="$dir/.requirements.sha" want reqs=()
  want=$(cat "$@" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$dir/bin/pip" install -q --upgrade pip
    for r in "$@"; do reqs+=(-r "$r"); done
    "$dir/bin/pip" install -q "${reqs[@]}"
    echo "$want" > "$stamp"
  fi
}
main_reqs=(requirements.txt requirements-test.txt)
for r in tests/requirements-*.txt; do
  [ -f "$r" ] && [ "$r" != tests/requirements-prefect.txt ] && main_reqs+=("$r")
done
install_venv .venv "${main_reqs[@]}"
if [ -f tests/requirements-prefect.txt ]; then
  install_venv .venv-prefect tests/requirements-prefect.txt
fi
echo "environment ready: .venv ($(.venv/bin/python --version)), PostgreSQL $(ls /usr/lib/postgresql | sort -n | tail -1)"
