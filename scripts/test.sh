#!/usr/bin/env bash
# The whole test suite of kafka-lambda, from a fresh Debian machine with Rust:
#
#   scripts/test.sh
#
# Installs what is missing (Debian packages with Java and Maven, Apache Kafka from Maven Central,
# cargo-lambda, cargo-nextest), then runs, in order: rustfmt's check, clippy with warnings
# denied, the arm64 build of every template function (infra/build.sh: `sam build`), every test
# of the workspace tier by tier (scripts/nextest.toml): the unit tier (no service), the deploy
# tier (the deployment tools), then, once the services are up, the README's demo (scripts/demo.sh,
# which must succeed) and the same demo with a poller that cannot start (which must fail, naming
# its poller step), then the services tier against a real
# Apache Kafka broker (plus the private clusters some tests start) and the real
# `cargo lambda watch` emulator; and the doc tests. Every step runs even when an earlier one
# failed, so one run reports everything, each step with its duration; the script exits non-zero
# when any step failed. The services are stopped on exit, whatever happened, when this script
# started them; services that were already running (scripts/services.sh start) are left running.
#
# Tests run with cargo-nextest, which `install` puts in place (one process per test, a hung
# test is ended after 5 minutes: scripts/nextest.toml); only if that install failed, `cargo test`
# runs every test in one step, tiers and all. With CI=true (.ci/run), cargo runs with --locked,
# so a Cargo.lock that is out of date fails the run.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly services="$repo/scripts/services.sh"
cd "$repo"

cargo_flags=()
if [[ "${CI:-}" == true ]]; then
  cargo_flags+=(--locked)
  # A CI run builds once: incremental caches would only take disk (GBs) and time.
  export CARGO_INCREMENTAL=0
fi

# The disk the builds use, in GB: free space at the start and what the target dir takes at the end
# are printed with the summary, so a run that fills the disk says how close it was.
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
disk_free_gb() { df -B1G --output=avail "$(dirname "$target_dir")" 2>/dev/null | tail -1 | tr -d ' '; }
disk_free_at_start="$(disk_free_gb)"
readonly disk_free_at_start
# A clean clone's run writes about 10 GB (target dir ~7 GB, tools, the arm64 build): say so at once
# when the disk is short, instead of letting a link step fail with "No space left on device".
readonly disk_needed_gb=12
if [[ "$disk_free_at_start" =~ ^[0-9]+$ ]] && ((disk_free_at_start < disk_needed_gb)); then
  printf '\ntest.sh: WARNING: only %s GB free on the disk of %s; a run from a clean clone needs about %s GB (free some space, or set CARGO_TARGET_DIR to a larger disk)\n' \
    "$disk_free_at_start" "$target_dir" "$disk_needed_gb" >&2
fi

summary=()
failures=0
stop_services=false
step_pid=""

log() { printf '\ntest.sh: %s\n' "$*" >&2 || true; }

# Runs one step, records its outcome and duration, and never stops the script. The step runs
# in the background so that a SIGTERM (a CI time limit, say) reaches the traps at once instead
# of after the step.
step() {
  local name="$1" started="$SECONDS" status=0
  shift
  log "$name: $*"
  "$@" &
  step_pid=$!
  wait "$step_pid" || status=$?
  step_pid=""
  local took=$((SECONDS - started))
  if ((status == 0)); then
    summary+=("$(printf '  ok      %-13s %5ss' "$name" "$took")")
  else
    summary+=("$(printf '  FAILED  %-13s %5ss  (exit %s)' "$name" "$took" "$status")")
    failures=$((failures + 1))
  fi
}

finish() {
  local status=$?
  # Stopping must survive a reader that went away (`scripts/test.sh | head`).
  trap '' PIPE
  if [[ -n "$step_pid" ]]; then
    kill -TERM "$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  if [[ "$stop_services" == true ]]; then
    "$services" stop || status=1
  fi
  printf '\ntest.sh summary:\n' >&2
  if ((${#summary[@]} > 0)); then
    printf '%s\n' "${summary[@]}" >&2
  fi
  printf '  disk: %s GB free at the start, %s GB free now; the target dir takes %s\n' \
    "$disk_free_at_start" "$(disk_free_gb)" "$(du -sh "$target_dir" 2>/dev/null | cut -f1)" >&2
  if ((failures > 0)); then
    printf 'test.sh: %s step(s) FAILED\n' "$failures" >&2
    status=1
  elif ((status != 0)); then
    printf 'test.sh: FAILED before all steps ran (exit %s)\n' "$status" >&2
  else
    printf 'test.sh: all steps passed in %ss\n' "$SECONDS" >&2
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The demo must fail loudly when its main job fails: with a poller that cannot start (an
# argument it refuses), scripts/demo.sh must exit non-zero naming the poller step.
demo_fails_when_its_poller_fails() {
  local output status=0
  output="$(KL_DEMO_POLLER_ARGS=--no-such-option "$repo/scripts/demo.sh" 2>&1)" || status=$?
  printf '%s\n' "$output" | tail -n 5
  if ((status == 0)); then
    log "scripts/demo.sh exited 0 although its poller failed"
    return 1
  fi
  if [[ "$output" != *"demo FAILED in step 'demo_poller'"* ]]; then
    log "scripts/demo.sh failed (exit $status) without naming the poller step"
    return 1
  fi
}

# The tests of one tier of scripts/nextest.toml: those its filterset selects.
run_tier() {
  cargo nextest run "${cargo_flags[@]}" --workspace --all-features \
    --config-file "$repo/scripts/nextest.toml" --no-fail-fast -E "$1"
}

step install "$services" install
have_nextest=false
if cargo nextest --version >/dev/null 2>&1; then
  have_nextest=true
fi

step fmt cargo fmt --all -- --check
step clippy cargo clippy "${cargo_flags[@]}" --workspace --all-targets --all-features -- -D warnings
# Every function of template.yaml built for Lambda (arm64, `sam build` with cargo-lambda) before
# the services and the tests start, so this cold release build (about 10 minutes on 2 cores)
# does not compete with timing-bound integration tests; the test
# sam_build_makes_an_arm64_bootstrap_for_every_function then checks a warm rebuild.
step deploy-build "$repo/infra/build.sh"

if [[ "$have_nextest" == true ]]; then
  step unit-tests run_tier 'not group(services) and not group(deploy)'
  step deploy-tests run_tier 'group(deploy)'
fi

if ! "$services" status >/dev/null 2>&1; then
  stop_services=true
fi
services_started="$SECONDS"
if ! "$services" start; then
  log "the test services could not be started: the integration tests cannot run"
  summary+=("$(printf '  FAILED  %-13s %5ss' services $((SECONDS - services_started)))")
  failures=$((failures + 1))
  exit 1
fi
summary+=("$(printf '  ok      %-13s %5ss' services $((SECONDS - services_started)))")
eval "$("$services" env)"
log "services: KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS LAMBDA_ENDPOINT=$LAMBDA_ENDPOINT"

# The README's main job first, against the running services (which it leaves running), then
# the check that it cannot pass when its poller fails.
step demo "$repo/scripts/demo.sh"
step demo-fails demo_fails_when_its_poller_fails

if [[ "$have_nextest" == true ]]; then
  step service-tests run_tier 'group(services)'
else
  log "cargo-nextest is not installed: running every test with cargo test"
  step tests cargo test "${cargo_flags[@]}" --workspace --all-features --no-fail-fast
fi
step doctests cargo test "${cargo_flags[@]}" --workspace --all-features --doc
