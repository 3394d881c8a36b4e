#!/usr/bin/env bash
# Functions here run from the EXIT trap and the demo_steps list: not unreachable code.
# shellcheck disable=SC2317

# The kafka-lambda demo, from a fresh Debian machine with Rust:
#
#   scripts/demo.sh
#
# Installs what is missing and starts only what the demo uses (`scripts/services.sh start
# --demo`: the broker and the emulator with examples/log-etl built), runs the demo steps below,
# then stops the services it started, whatever happened; services that were already running are
# left running. Each step checks what it must produce; the first step that fails ends the demo
# with a non-zero exit status and a line naming the step.
#
# Steps, in order:
#   log-etl  invokes examples/log-etl under the local Lambda emulator with every sample event in
#            examples/log-etl/events/, as AWS would for an MSK trigger, and prints the cleaned
#            documents each invocation returned; then shows that an event with a malformed
#            record (events/invalid/) fails the invocation with an error naming the record.
#   poller   the main job: creates a topic on the local broker, produces the sample error logs
#            to it, and runs kafka-lambda-poller (--until-caught-up) with examples/log-etl as the
#            function, exactly as the native MSK trigger would invoke it; then prints the cleaned
#            documents the function logged, and fails unless the poller exited 0 and they are
#            exactly the documents expected of the sample (examples/log-etl/events/expected/).
#
# Settings, from the environment:
#   KL_DEMO_POLLER_ARGS  extra arguments for `kafka-lambda-poller run` (the test that the demo
#                        fails when its main job fails passes a bad one)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly services="$repo/scripts/services.sh"
cd "$repo"

stop_services=false
# The step running, named when the demo fails.
current_step="starting the services"

say() { printf '\n==> %s\n' "$*" || true; }
warn() { printf 'demo: %s\n' "$*" >&2 || true; }

finish() {
  local status=$?
  # Stopping must survive a reader that went away (`scripts/demo.sh | head`).
  trap '' PIPE
  if [[ "$stop_services" == true ]]; then
    "$services" stop || status=1
  fi
  if ((status == 0)); then
    say "demo finished"
  else
    warn "demo FAILED in step '$current_step' (exit $status)"
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
dropped = answer.get("dropped", 0)
print(f"{len(documents)} cleaned document(s), {dropped} record(s) dropped:")
print(json.dumps(documents, indent=2, ensure_ascii=False))'
}

# Invokes `function` with the JSON file `event`; sets `status` and `body` to its answer.
invoke_with_file() {
  local function="$1" event="$2" answer curl_status=0
  # The emulator never times out an invocation (see scripts/services.sh), so curl does.
  answer="$(curl -sS --max-time 180 -w '\n%{http_code}' -X POST \
    -H 'content-type: application/json' --data-binary "@$event" \
    "$LAMBDA_ENDPOINT/2015-03-31/functions/$function/invocations")" || curl_status=$?
  if ((curl_status == 28)); then
    warn "$function gave no answer within 180s: its process probably died; see .services/lambda.log"
    return 1
  elif ((curl_status != 0)); then
    warn "could not reach the Lambda emulator at $LAMBDA_ENDPOINT (curl exit $curl_status)"
    return 1
  fi
  status="${answer##*$'\n'}"
  body="${answer%$'\n'*}"
}

demo_log_etl() {
  local event status body failed=0
  local events=("$repo"/examples/log-etl/events/*.json)
  local invalid=("$repo"/examples/log-etl/events/invalid/*.json)
  if [[ ! -f "${events[0]}" ]]; then
    warn "no sample events in examples/log-etl/events/"
    return 1
  fi
  for event in "${events[@]}"; do
    say "log-etl <- ${event#"$repo"/}"
    invoke_with_file log-etl "$event" || return 1
    if [[ "$status" == 200 ]]; then
      printf '%s' "$body" | print_documents
    else
      warn "log-etl answered HTTP $status: $body"
      failed=1
    fi
  done
  # A record that is not an error log fails the whole invocation, naming the record, so the
  # trigger retries the batch instead of losing it.
  for event in "${invalid[@]}"; do
    [[ -f "$event" ]] || continue
    say "log-etl <- ${event#"$repo"/} (a malformed record: the invocation must fail)"
    invoke_with_file log-etl "$event" || return 1
    if [[ "$status" == 500 ]]; then
      printf 'function error, as expected: %s\n' "$body"
    else
      warn "expected a function error (HTTP 500), got HTTP $status: $body"
      failed=1
    fi
  done
  return "$failed"
}

demo_poller() {
  local topic="demo-error-logs-$RANDOM$RANDOM" dir="$repo/.services/demo" lines
  mkdir -p "$dir"
  say "building kafka-lambda-poller"
  cargo build --quiet -p kafka-lambda-poller --bin kafka-lambda-poller --example produce
  say "creating topic $topic (2 partitions) on $KAFKA_BOOTSTRAP_SERVERS"
  "$repo/scripts/kafka.sh" run-class org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --create --topic "$topic" --partitions 2 >/dev/null
  # The sample error logs: the values of the MSK sample event, one JSON document per line.
  lines="$dir/error-logs.jsonl"
  python3 -c '
import base64, json, sys
event = json.load(open(sys.argv[1]))
for records in event["records"].values():
    for record in records:
        print(base64.b64decode(record["value"]).decode())' "$repo/examples/log-etl/events/msk.json" >"$lines"
  "$repo/target/debug/examples/produce" "$KAFKA_BOOTSTRAP_SERVERS" "$topic" 2 <"$lines"
  cat >"$dir/poller.toml" <<TOML
[kafka]
bootstrap_servers = "$KAFKA_BOOTSTRAP_SERVERS"
fetch_wait_max_ms = 10

[lambda]
region = "us-east-1"
endpoint_url = "$LAMBDA_ENDPOINT"

[[mapping]]
function = "log-etl"
topics = ["$topic"]
consumer_group = "demo-$topic"
batching_window_ms = 200
event_source = "aws:kafka"
event_source_arn = "arn:aws:kafka:us-east-1:123456789012:cluster/demo/00000000-0000-0000-0000-000000000000-1"
TOML
  say "kafka-lambda-poller run --until-caught-up ($(wc -l <"$lines") records -> log-etl)"
  local log_before poller_status=0 extra_args=()
  read -r -a extra_args <<<"${KL_DEMO_POLLER_ARGS:-}"
  log_before="$(wc -l <"$repo/.services/lambda.log")"
  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true \
    "$repo/target/debug/kafka-lambda-poller" run --config "$dir/poller.toml" --until-caught-up \
    "${extra_args[@]}" || poller_status=$?
  if ((poller_status != 0)); then
    warn "kafka-lambda-poller exited $poller_status: the records were not all delivered (its log is above)"
    return 1
  fi
  say "cleaned documents the function produced (from its log):"
  # The function logs each document it cleans; the sample's are in events/expected/msk.json
  # (records with returnCode 0 are dropped, as the function's answer says).
  tail -n "+$((log_before + 1))" "$repo/.services/lambda.log" | python3 -c '
import json, re, sys
expected = json.load(open(sys.argv[1]))["documents"]
seen = []
for line in sys.stdin:
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    m = re.search(r"cleaned error log record=(\S+) document=(\{.*\})", line)
    if m:
        print(m.group(1), m.group(2))
        seen.append(json.loads(m.group(2)))
key = lambda d: json.dumps(d, sort_keys=True)
missing = [d for d in expected if key(d) not in {key(s) for s in seen}]
if missing or len(seen) != len(expected):
    print(f"demo: expected the {len(expected)} cleaned documents of examples/log-etl/events/expected/msk.json, "
          f"the function logged {len(seen)}; missing: {json.dumps(missing, ensure_ascii=False)}", file=sys.stderr)
    sys.exit(1)
print(f"all {len(expected)} expected documents were cleaned")' "$repo/examples/log-etl/events/expected/msk.json"
}

# The demo's steps, in order.
demo_steps=(demo_log_etl demo_poller)

say "starting the services the demo uses (scripts/services.sh start --demo)"
# Stop the services at the end only if the broker was not already running: someone else's
# broker (and what runs against it) is left alone.
# (The status is read whole first: `grep -q` leaving early would fail the pipeline.)
status="$("$services" status 2>/dev/null || true)"
if ! grep -q '^kafka: running' <<<"$status"; then
  stop_services=true
fi
"$services" start --demo
eval "$("$services" env)"

# Each step runs outside any `||` or `if`, so `set -e` holds inside it: a failing command ends
# the demo, and `finish` names the step.
for current_step in "${demo_steps[@]}"; do
  "$current_step"
done
