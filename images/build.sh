#!/usr/bin/env bash
# Build the images localhost/hookplane:dev and localhost/hookplane-operator:dev with podman,
# without network access beyond the package registries: the `image`-profile binaries, stripped, on
# FROM scratch with exactly the shared libraries they link, CA certificates and a non-root
# user (65532). Prints each image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/images/containers.conf"
pm() { podman --storage-driver=vfs "$@"; }

# The `image` profile (Cargo.toml): release with whole-program LTO, stripped, for the images
# you ship. HOOKPLANE_IMAGE_PROFILE=release builds them faster and about 10 MB larger (CI does,
# to stay within its 30 minutes on 2 cores).
profile="${HOOKPLANE_IMAGE_PROFILE:-image}"
cargo build --profile "$profile" -q -p hookplane -p hookplane-operator
release="${CARGO_TARGET_DIR:-target}/$profile"

for name in hookplane hookplane-operator; do
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  rootfs="$ctx/rootfs"
  mkdir -p "$rootfs/usr/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$ctx/data"
  chmod 1777 "$rootfs/tmp"
  install -m 0755 "$release/$name" "$rootfs/usr/bin/$name"
  strip --strip-unneeded "$rootfs/usr/bin/$name"
  # The shared libraries the binary links, and the dynamic loader, at their own paths.
  for lib in $(ldd "$rootfs/usr/bin/$name" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    cp --parents -L "$lib" "$rootfs/"
  done
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/hookplane:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  fi
  pm build -q -t "localhost/$name:dev" -f "images/Containerfile.$name" "$ctx" >/dev/null
  size="$(pm image inspect --format '{{.Size}}' "localhost/$name:dev")"
  echo "localhost/$name:dev: $((size / 1024 / 1024)) MiB ($size bytes)"
  rm -rf "$ctx"
  trap - EXIT
done
