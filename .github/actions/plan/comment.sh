#!/usr/bin/env bash
# Keeps one plan comment per pull request (found by its marker, edited in place) and sets or clears
# the review label. Needs GH_TOKEN (pull-requests: write) and the gh CLI the runners ship.
set -euo pipefail

pr="${WUFB_PR:?not a pull request}"
repo="${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is set by the runner}"
body="${WUFB_OUT_DIR:-.}/plan.md"
label="${WUFB_REVIEW_LABEL:-wufb/needs-review}"

existing="$(gh api "repos/${repo}/issues/${pr}/comments" --paginate \
  --jq '.[] | select(.body | startswith("<!-- wufb-plan -->")) | .id' | head -n 1)"
if [ -n "${existing}" ]; then
  gh api --method PATCH "repos/${repo}/issues/comments/${existing}" -F "body=@${body}" >/dev/null
else
  gh api --method POST "repos/${repo}/issues/${pr}/comments" -F "body=@${body}" >/dev/null
fi

if [ "${WUFB_REVIEW:-false}" = true ]; then
  gh api --method POST "repos/${repo}/issues/${pr}/labels" -f "labels[]=${label}" >/dev/null
else
  # Absent already is fine.
  gh api --method DELETE "repos/${repo}/issues/${pr}/labels/${label//\//%2F}" >/dev/null 2>&1 || true
fi
