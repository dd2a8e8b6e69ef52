#!/bin/sh
# Builds the production binary the image carries: without the `demo` feature (no Graph emulator, no test
# API server), glibc linked statically (names resolve through /etc/hosts and /etc/resolv.conf with no NSS
# modules; TLS roots are compiled in), stripped. `make image` and the Dockerfile both run this script, so
# they build the same binary.
#
#   scripts/static-binary.sh [TARGET-TRIPLE] [TARGET-DIR]
#
# Prints the path of the binary.
set -eu
triple="${1:-}"
[ -n "$triple" ] || triple="$(rustc -vV | sed -n 's/^host: //p')"
dir="${2:-target/image-build}"
# --target keeps these flags off build scripts and proc macros. getrandom's default Linux backend finds
# the getrandom(2) wrapper through dlsym, which a static binary lacks, and falls back to /dev/urandom;
# linux_getrandom calls the wrapper directly, so no device file is needed.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  cargo build --locked --profile image -p wufb-operator --no-default-features \
  --target "$triple" --target-dir "$dir" >&2
echo "$dir/$triple/image/wufb-operator"
