#!/usr/bin/env bash
# Validates the managed directory, then plans it whole (with --prune -l when a selector is given, so a
# deleted file shows as the deletion it causes). Writes plan.md (the comment, changed objects first)
# and plan.json, and sets the step outputs changed, review and flags. Exit 1 only when the plan failed.
set -euo pipefail

dir="${WUFB_DIRECTORY:?set the directory input}"
ns="${WUFB_NAMESPACE:?set the namespace input}"
out="${WUFB_OUT_DIR:-.}"

if ! wufb-operator validate -f "${dir}" >"${out}/validate.txt" 2>&1; then
  cat "${out}/validate.txt"
  {
    echo "<!-- wufb-plan -->"
    echo "### wufb-operator plan"
    echo
    echo "The manifests are not valid; nothing was planned:"
    echo
    echo '```'
    cat "${out}/validate.txt"
    echo '```'
  } >"${out}/plan.md"
  echo "changed=true" >>"${GITHUB_OUTPUT:-/dev/null}"
  exit 1
fi

args=(plan -f "${dir}" -n "${ns}" -o markdown --report-json "${out}/plan.json"
  --review-devices "${WUFB_REVIEW_DEVICES:-500}")
if [ -n "${WUFB_SELECTOR:-}" ]; then
  args+=(--prune -l "${WUFB_SELECTOR}")
fi
set +e
wufb-operator "${args[@]}" >"${out}/plan-body.md"
code=$?
set -e
if [ "${code}" = 1 ]; then
  echo "plan.sh: the plan failed; see the error above" >&2
  exit 1
fi

flags="$(python3 -c 'import json, sys; print(",".join(json.load(open(sys.argv[1]))["flags"]))' "${out}/plan.json")"
review=false
if [ -n "${flags}" ]; then
  review=true
fi
{
  echo "<!-- wufb-plan -->"
  cat "${out}/plan-body.md"
  echo
  echo "<sub>Planned with wufb-operator ${WUFB_PLAN_VERSION:-} for commit ${GITHUB_SHA:-unknown}.</sub>"
} >"${out}/plan.md"
{
  echo "changed=$([ "${code}" = 2 ] && echo true || echo false)"
  echo "review=${review}"
  echo "flags=${flags}"
} >>"${GITHUB_OUTPUT:-/dev/null}"
