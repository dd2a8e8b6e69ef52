#!/usr/bin/env bash
# Fetches the job's GitHub OIDC token for Entra ID (audience api://AzureADTokenExchange) into a file and
# points the CLI at it: AZURE_FEDERATED_TOKEN_FILE, with AZURE_TENANT_ID and AZURE_CLIENT_ID, is the
# workload identity sign-in the operator already supports. No client secret is stored anywhere.
set -euo pipefail

: "${AZURE_TENANT_ID:?set the tenant-id input}"
: "${AZURE_CLIENT_ID:?set the client-id input}"
if [ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] || [ -z "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]; then
  echo "oidc.sh: no OIDC token is offered to this job; give the workflow 'permissions: id-token: write'" >&2
  exit 1
fi

file="${RUNNER_TEMP:-$(mktemp -d)}/wufb-federated-token"
answer="$(curl -fsSL -H "Authorization: bearer ${ACTIONS_ID_TOKEN_REQUEST_TOKEN}" \
  "${ACTIONS_ID_TOKEN_REQUEST_URL}&audience=api://AzureADTokenExchange")"
token="$(printf '%s' "${answer}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["value"])')"
# The token is a credential: never printed, only written where the CLI reads it.
if [ -n "${GITHUB_ACTIONS:-}" ]; then
  echo "::add-mask::${token}"
fi
umask 077
printf '%s' "${token}" >"${file}"
{
  echo "AZURE_FEDERATED_TOKEN_FILE=${file}"
  echo "AZURE_TENANT_ID=${AZURE_TENANT_ID}"
  echo "AZURE_CLIENT_ID=${AZURE_CLIENT_ID}"
} >>"${GITHUB_ENV:?GITHUB_ENV is set by the runner}"
