#!/usr/bin/env bash
# Installs schemathesis (PyPI; property-based testing of an API against its
# OpenAPI document) into a virtualenv in a cache directory and prints the
# executable's path on stdout.
#
#   deploy/tools/install-schemathesis.sh
#
# The version is pinned because the test's flags (--max-time, --phases,
# --checks all) follow the 4.x command line; a schemathesis on PATH is used
# only when it is that version. The cache directory is $CORSAIR_TOOLS_DIR
# (default: ~/.cache/corsair-tools); a second run reuses it.
set -euo pipefail

version="4.32.5"

is_pinned() { # is_pinned EXECUTABLE
    "$1" --version 2>/dev/null | grep -qx "schemathesis, version $version"
}

if command -v schemathesis >/dev/null 2>&1 && is_pinned "$(command -v schemathesis)"; then
    command -v schemathesis
    exit 0
fi

dir="${CORSAIR_TOOLS_DIR:-${HOME:-/root}/.cache/corsair-tools}/schemathesis"
bin="$dir/bin/schemathesis"
if [ -x "$bin" ] && is_pinned "$bin"; then
    echo "$bin"
    exit 0
fi
command -v python3 >/dev/null || { echo "install-schemathesis: python3 is needed" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
# A virtualenv hard-codes its own path, so it is built in place; the
# executable appears last (pip writes it), and a failed run is removed.
rm -rf "$dir"
trap 'rm -rf "$dir"' ERR
python3 -m venv "$dir" >&2
"$dir/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" >&2
echo "$bin"
