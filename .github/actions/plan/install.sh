#!/usr/bin/env bash
# Installs the released wufb-operator CLI of one version onto the job's PATH, after checking the
# archive against the release's SHA-256 checksums. WUFB_RELEASE_BASE overrides where releases are
# downloaded from (a mirror, or a file:// directory in tests).
set -euo pipefail

version="${1:?give the version to install, such as 0.1.0}"
version="${version#v}"
base="${WUFB_RELEASE_BASE:-https://github.com/wufb-operator/wufb-operator/releases/download}/v${version}"

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "install.sh: no wufb-operator release for $(uname -s); use a Linux or macOS runner" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install.sh: no wufb-operator release for $(uname -m)" >&2; exit 1 ;;
esac

archive="wufb-operator_${version}_${os}_${arch}.tar.gz"
sums="wufb-operator_${version}_SHA256SUMS"
work="$(mktemp -d)"
curl -fsSL --retry 3 -o "${work}/${archive}" "${base}/${archive}"
curl -fsSL --retry 3 -o "${work}/${sums}" "${base}/${sums}"
if ! grep -q "  ${archive}\$" "${work}/${sums}"; then
  echo "install.sh: ${sums} lists no checksum for ${archive}" >&2
  exit 1
fi
(cd "${work}" && grep "  ${archive}\$" "${sums}" | sha256sum --check --strict -)

bin="${WUFB_BIN_DIR:-${work}/bin}"
mkdir -p "${bin}"
tar -xzf "${work}/${archive}" -C "${bin}" wufb-operator
"${bin}/wufb-operator" --version
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "${bin}" >>"${GITHUB_PATH}"
fi
