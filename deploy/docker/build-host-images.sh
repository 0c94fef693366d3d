#!/usr/bin/env bash
# Builds the runtime images FROM scratch out of binaries already built on
# this host (no base image is pulled): each image holds the binary, the
# shared libraries `ldd` lists for it, the system CA bundle, and passwd/group
# entries for the unprivileged user 65532, which the image runs as.
#
#   deploy/docker/build-host-images.sh BIN_DIR [TAG]
#
# BIN_DIR holds corsair-control-plane and corsair-agent (e.g. target/release);
# images are tagged localhost/corsair-control-plane:TAG and
# localhost/corsair-agent:TAG (TAG defaults to "host").
# Podman flags come from $PODMAN (default: podman --storage-driver vfs, which
# works without overlay support).
set -euo pipefail

bin_dir="${1:?usage: build-host-images.sh BIN_DIR [TAG]}"
tag="${2:-host}"
podman_cmd=(${PODMAN:-podman --storage-driver vfs})
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -r "$ca_bundle" ] || { echo "build-host-images: no CA bundle at $ca_bundle (apt-get install ca-certificates)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

build() { # build BINARY PORTS...
    local name="$1"; shift
    local binary="$bin_dir/$name"
    [ -x "$binary" ] || { echo "build-host-images: $binary is missing (cargo build first)" >&2; exit 1; }
    local ctx="$work/$name"
    local root="$ctx/rootfs"
    mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
    chmod 1777 "$root/tmp"
    cp "$binary" "$root/usr/local/bin/$name"
    # Every library the dynamic loader would map, and the loader itself, at
    # the same absolute paths (lines: "libx.so => /path (addr)" or "/lib64/ld-... (addr)").
    ldd "$binary" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u |
        while read -r lib; do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    cp -L "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
    {
        echo "FROM scratch"
        echo "COPY rootfs/ /"
        echo "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PATH=/usr/local/bin"
        echo "USER 65532:65532"
        echo "EXPOSE $*"
        echo "ENTRYPOINT [\"/usr/local/bin/$name\"]"
        echo "CMD [\"--help\"]"
    } > "$ctx/Containerfile"
    "${podman_cmd[@]}" build --quiet -t "localhost/$name:$tag" -f "$ctx/Containerfile" "$ctx" >/dev/null
    echo "built localhost/$name:$tag"
}

build corsair-control-plane 8080 50051
build corsair-agent 8080 9090
