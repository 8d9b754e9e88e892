#!/usr/bin/env bash
# Galaxy's and Automation Hub's upload check (galaxy-importer) on a built collection tarball, offline:
#   scripts/galaxy-import.sh build/pgtidy-maintenance-X.Y.Z.tar.gz
# galaxy-importer runs from .venv-galaxy, installed from locks/galaxy.txt as scripts/bootstrap.sh installs the
# other environments; ansible-galaxy and ansible-lint come from .venv. Fails when the import prints an ERROR
# line or does not end with "Importer processing completed successfully".
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 COLLECTION-TARBALL" >&2; exit 2; }
tarball="$(realpath "$1")"
root="$(pwd)"

# bootstrap.sh's install_venv, without building the environments bootstrap.sh builds.
PYTHON="${PYTHON:-python3}"
eval "$(sed -n '/^install_venv() {/,/^}/p' scripts/bootstrap.sh)"
declare -F install_venv >/dev/null || { echo "install_venv not found in scripts/bootstrap.sh" >&2; exit 1; }
install_venv .venv-galaxy locks/galaxy.txt
[ -x .venv/bin/ansible-galaxy ] && [ -x .venv/bin/ansible-lint ] || { echo ".venv is missing: run make setup" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/galaxy-importer.cfg" <<'CFG'
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
LOCAL_IMAGE_DOCKER = False
CHECK_CHANGELOG = True
CFG
set +e
(cd "$work" && PATH="$root/.venv/bin:$PATH" GALAXY_IMPORTER_CONFIG="$work/galaxy-importer.cfg" \
  "$root/.venv-galaxy/bin/python" -m galaxy_importer.main "$tarball") 2>&1 | tee "$work/import.log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then echo "galaxy-importer exited with $rc" >&2; exit 1; fi
if grep -q '^ERROR' "$work/import.log"; then echo "galaxy-importer reported an error" >&2; exit 1; fi
if [ "$(grep -v '^[[:space:]]*$' "$work/import.log" | tail -n 1)" != "Importer processing completed successfully" ]; then
  echo "galaxy-importer did not complete successfully" >&2; exit 1
fi
