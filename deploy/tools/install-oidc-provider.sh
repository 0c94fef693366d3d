#!/usr/bin/env bash
# Installs the npm package oidc-provider (a certified OpenID Provider, run
# by control-plane/tests/ui_oidc.rs as the identity provider the control
# plane signs in against) into a cache directory and prints that directory
# on stdout: the package is at $dir/node_modules/oidc-provider.
#
#   deploy/tools/install-oidc-provider.sh   # -> $CORSAIR_TOOLS_DIR/oidc-provider-8.8.1
#
# The version is pinned: v8 supports Debian's Node 20 (v9 wants Node 22),
# and the test's provider configuration follows the v8 API. The cache
# directory is $CORSAIR_TOOLS_DIR (default: ~/.cache/corsair-tools); a
# second run finds the package and downloads nothing. Progress goes to stderr.
set -euo pipefail

version="8.8.1"
dir="${CORSAIR_TOOLS_DIR:-${HOME:-/root}/.cache/corsair-tools}/oidc-provider-$version"
marker="$dir/.installed"
if [ -f "$marker" ]; then
    echo "$dir"
    exit 0
fi

command -v node >/dev/null || { echo "install-oidc-provider: node is needed (apt-get install nodejs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-oidc-provider: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
# Installed beside the final directory and renamed into place: a concurrent
# run (two test binaries) sees either no package or a complete one.
work="$(mktemp -d "$dir.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "install-oidc-provider: npm install oidc-provider@$version" >&2
npm install --prefix "$work" --no-audit --no-fund --no-save --loglevel=error \
    "oidc-provider@$version" >&2
node -e "import('$work/node_modules/oidc-provider/lib/index.js').then(() => {})" >&2
touch "$work/.installed"
if ! mv -T "$work" "$dir" 2>/dev/null; then
    # Another run finished first; use its copy.
    [ -f "$marker" ] || { echo "install-oidc-provider: could not move $work to $dir" >&2; exit 1; }
fi
echo "$dir"
