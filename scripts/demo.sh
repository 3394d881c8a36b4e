#!/usr/bin/env bash
# Functions here run from the EXIT trap and the demo_steps list: not unreachable code.
# shellcheck disable=SC2317

# The kafka-lambda demo, from a fresh Debian machine with Rust:
#
#   scripts/demo.sh
#
# Installs what is missing and starts the services (scripts/services.sh), runs the demo steps
# below, then stops the services it started, whatever happened; services that were already
# running are left running. Exits non-zero when a step fails.
#
# Steps, in order:
#   log-etl  invokes examples/log-etl under the local Lambda emulator with every sample event in
#            examples/log-etl/events/, as AWS would for an MSK trigger, and prints the cleaned
#            documents each invocation returned.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly services="$repo/scripts/services.sh"
cd "$repo"

stop_services=false

say() { printf '\n==> %s\n' "$*"; }
warn() { printf 'demo: %s\n' "$*" >&2; }

finish() {
  local status=$?
  if [[ "$stop_services" == true ]]; then
    "$services" stop || status=1
  fi
  if ((status == 0)); then
    say "demo finished"
  else
    warn "demo FAILED (exit $status)"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints the documents of a log-etl answer ({"documents":[...],"dropped":N}) as indented JSON,
# non-ASCII text as it is.
print_documents() {
  python3 -c '
import json, sys
answer = json.load(sys.stdin)
documents = answer.get("documents", [])
print(f"{len(documents)} cleaned document(s), {answer.get(\"dropped\", 0)} record(s) dropped:")
print(json.dumps(documents, indent=2, ensure_ascii=False))'
}

# Invokes `function` with the JSON file `event`; prints the answer and returns non-zero unless
# the function succeeded.
invoke_with_file() {
  local function="$1" event="$2" answer status body
  answer="$(curl -sS --max-time 180 -w '\n%{http_code}' -X POST \
    -H 'content-type: application/json' --data-binary "@$event" \
    "$LAMBDA_ENDPOINT/2015-03-31/functions/$function/invocations")" || {
    warn "could not reach the Lambda emulator at $LAMBDA_ENDPOINT"
    return 1
  }
  status="${answer##*$'\n'}"
  body="${answer%$'\n'*}"
  if [[ "$status" != 200 ]]; then
    warn "$function answered HTTP $status: $body"
    return 1
  fi
  printf '%s' "$body" | print_documents
}

demo_log_etl() {
  local event failed=0 events=("$repo"/examples/log-etl/events/*.json)
  if [[ ! -f "${events[0]}" ]]; then
    warn "no sample events in examples/log-etl/events/"
    return 1
  fi
  for event in "${events[@]}"; do
    say "log-etl ← ${event#"$repo"/}"
    invoke_with_file log-etl "$event" || failed=1
  done
  return "$failed"
}

# The demo's steps, in order. The poller step (produce the samples to a tansu topic and let the
# poller invoke log-etl) goes after log-etl.
demo_steps=(demo_log_etl)

say "starting the services (scripts/services.sh start)"
if ! "$services" status >/dev/null 2>&1; then
  stop_services=true
fi
"$services" start
eval "$("$services" env)"

failed=0
for demo_step in "${demo_steps[@]}"; do
  "$demo_step" || failed=1
done
exit "$failed"
