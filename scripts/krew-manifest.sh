#!/usr/bin/env bash
# Renders the krew plugin manifest (.github/krew/wufb.yaml) for one release from its SHA-256 sums file:
# every ${VERSION} and ${SHA256_<os>_<arch>} of the template is replaced; a platform whose archive has no
# sum stops the render rather than publish a manifest krew would refuse.
#
#   scripts/krew-manifest.sh VERSION SHA256SUMS > wufb.yaml
set -euo pipefail
version="${1:?give the version, such as 0.1.0}"
sums="${2:?give the SHA256SUMS file}"
template="$(dirname "$0")/../.github/krew/wufb.yaml"

text="$(sed "s/\${VERSION}/${version}/g" "${template}")"
while read -r platform; do
  os_arch="${platform#SHA256_}"
  archive="$(grep -o "wufb-operator_${version}_${os_arch}\.[a-z.]*" <<<"${text}" | head -n 1)"
  sum="$(awk -v f="${archive}" '$2 == f || $2 == "*" f { print $1 }' "${sums}")"
  if [ -z "${sum}" ]; then
    echo "krew-manifest.sh: ${sums} has no sum for ${archive}" >&2
    exit 1
  fi
  text="${text//\$\{${platform}\}/${sum}}"
done < <(grep -o 'SHA256_[a-z]*_[a-z0-9]*' "${template}" | sort -u)
printf '%s\n' "${text}"
