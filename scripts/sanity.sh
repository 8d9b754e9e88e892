#!/usr/bin/env bash
# ansible-test sanity without network access or Docker.
# ansible-test wants to run inside .../ansible_collections/<ns>/<name> (a real directory, not a symlink)
# and fetches a pip bootstrap script; the files are copied into such a tree and an offline stand-in
# that uses ensurepip + pip is placed in its cache first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$root/.venv}"
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for name in get_pip_24_2.py get_pip_23_3_2.py get_pip_25_0_1.py; do
  cat > "$cache/$name" <<'PY'
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ansible-test runs pip without any pip configuration; behind a TLS-intercepting proxy the system CA
# bundle is needed for this first install. The pip it installs (24.2+) then trusts the system store.
args = [a for a in sys.argv[1:] if a not in ("--disable-pip-version-check", "--no-setuptools", "--no-wheel")]
bundle = "/etc/ssl/certs/ca-certificates.crt"
if os.path.exists(bundle):
    args = ["--cert", bundle] + args
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/pgtidy/maintenance"
mkdir -p "$dest"
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$dest/")
cd "$dest"
export PATH="$venv/bin:$PATH"
ansible-test sanity --python 3.11 --color no "$@"
