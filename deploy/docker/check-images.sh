#!/usr/bin/env bash
# Checks the runtime images the way the charts run them: as uid 65532, with a
# read-only root filesystem, no network, every capability dropped; each
# binary must answer --help. Also checks each image's configured user.
#
#   deploy/docker/check-images.sh [TAG]     # default TAG: host
#
# Uses podman with the vfs storage driver and runc (crun cannot manage
# cgroups in some sandboxes); override with $PODMAN.
set -euo pipefail

tag="${1:-host}"
podman_cmd=(${PODMAN:-podman --storage-driver vfs --runtime runc})
failed=0

for name in corsair-control-plane corsair-agent; do
    image="localhost/$name:$tag"
    user="$("${podman_cmd[@]}" image inspect --format '{{.Config.User}}' "$image")"
    if [ "$user" != "65532:65532" ]; then
        echo "FAIL $image: configured user is '$user', want 65532:65532" >&2
        failed=1
        continue
    fi
    if ! out="$("${podman_cmd[@]}" run --rm --network none --read-only \
            --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \
            --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
            "$image" --help 2>&1)"; then
        echo "FAIL $image: --help exited non-zero:" >&2
        echo "$out" >&2
        failed=1
        continue
    fi
    if ! grep -q '^Usage: ' <<<"$out"; then
        echo "FAIL $image: --help printed no usage:" >&2
        echo "$out" >&2
        failed=1
        continue
    fi
    echo "ok   $image: --help as 65532 on a read-only root filesystem"
done
exit "$failed"
