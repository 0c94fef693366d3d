#!/usr/bin/env bash
# Installs kubernetes-validate (PyPI; bundles the Kubernetes OpenAPI schemas,
# so validation runs offline) into a virtualenv in a cache directory and
# prints the executable's path on stdout.
#
#   deploy/tools/install-kubernetes-validate.sh
#
# One already on PATH is used as is. The cache directory is
# $CORSAIR_TOOLS_DIR (default: ~/.cache/corsair-tools); a second run reuses it.
set -euo pipefail

if command -v kubernetes-validate >/dev/null 2>&1; then
    command -v kubernetes-validate
    exit 0
fi

version="1.37.0"
dir="${CORSAIR_TOOLS_DIR:-${HOME:-/root}/.cache/corsair-tools}/kubernetes-validate-$version"
bin="$dir/bin/kubernetes-validate"
if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi
command -v python3 >/dev/null || { echo "install-kubernetes-validate: python3 is needed" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
# A virtualenv hard-codes its own path, so it is built in place; the
# executable appears last (pip writes it), and a failed run is removed.
rm -rf "$dir"
trap 'rm -rf "$dir"' ERR
python3 -m venv "$dir" >&2
"$dir/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version" >&2
echo "$bin"
