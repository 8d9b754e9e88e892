#!/usr/bin/env bash
# Runs a command with this checkout visible as ansible_collections/pgtidy/maintenance.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/ansible_collections/pgtidy"
ln -s "$root" "$dir/ansible_collections/pgtidy/maintenance"
export ANSIBLE_COLLECTIONS_PATH="$dir${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}"
cd "$dir/ansible_collections/pgtidy/maintenance"
"$@"
