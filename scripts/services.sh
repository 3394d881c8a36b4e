#!/usr/bin/env bash
# The real services behind kafka-lambda's demo and integration tests: a Kafka-protocol broker
# (tansu, in-memory storage) and the local AWS Lambda emulator (`cargo lambda watch`), plus the
# private PostgreSQL server of the pg-sink example, which scripts/postgres.sh manages on its own.
#
# Usage: scripts/services.sh {install|start|stop|restart|status|env}
#   install  Debian packages the build and tests need, tansu and cargo-lambda, each only when
#            missing; PostgreSQL through `scripts/postgres.sh install`.
#   start    installs what is missing, starts both services in the background, or reuses them
#            when they already run, and returns once each one answers. Logs and pid files are
#            kept in .services/ (gitignored).
#   stop     stops both services with every process they started, then checks that none is left;
#            then `scripts/postgres.sh stop`. (`start` runs `scripts/postgres.sh start` too.)
#   restart  stop, then start: the emulator then serves the functions' current code (see below).
#   status   tells whether each service runs and answers; exits 0 only when both do.
#   env      prints the `export` line for the variables the tests and the demo read:
#            KAFKA_BOOTSTRAP_SERVERS and LAMBDA_ENDPOINT.
#
# Settings, from the environment:
#   KL_KAFKA_PORT          broker port                                   (19092)
#   KL_LAMBDA_PORT         emulator invoke API port                      (9000)
#   KL_LAMBDA_CONCURRENCY  instances of one function at most             (8)
#   KL_SERVICES_DIR        logs, pid files and the lock                  (<repo>/.services)
#   KL_TANSU_VERSION       tansu version that `install` puts in place    (0.6.0)
#   KL_CARGO_LAMBDA_VERSION  cargo-lambda version that `install` puts in place (1.9.2)
#
# How `cargo lambda watch` (1.9.2) behaves, read in its source and checked by running it:
# - It serves every binary target of the workspace as a function of the same name, at
#   POST /2015-03-31/functions/<binary>/invocations. An unknown name gets 404 with
#   {"title":"Missing function","detail":"... Available functions: {...}"}: this script's
#   readiness probe relies on that, so no function is started by the probe.
# - A function is compiled and started only on its first invocation, with
#   `cargo run --manifest-path Cargo.toml --bin <binary>` from the directory the emulator was
#   started in: the dev profile, the usual target dir (CARGO_TARGET_DIR when set), the package's
#   default features. A cold compile inside an invocation would outlast timeouts, so `start`
#   builds every function binary first with the same package selection, which leaves that
#   `cargo run` nothing to do (0.1 s). That `cargo run` still takes cargo's lock on the target
#   dir: while another cargo build holds it, a function's start, so its first invocation, waits.
# - Once started, a function process stays up and serves the following invocations. With
#   `--ignore-changes` (used here) the emulator never rebuilds or restarts it when files change:
#   it keeps serving the code it was started with, until `restart`. Without that flag every
#   file change anywhere in the repository restarts the running functions, which in a shared
#   work tree drops the invocations in flight.
# - `--concurrency N` lets up to N instances of one function run at once, started on demand
#   when invocations queue up; with the emulator's default of 1 the invocations of a function
#   run one after the other, unlike AWS, where a Kafka trigger invokes partitions concurrently.
#   KL_LAMBDA_CONCURRENCY sets it, 8 by default.
# - A successful invocation answers HTTP 200 with the function's output as the body. A function
#   error, a returned Err or a panic caught by lambda_runtime, answers HTTP 500 with the body the
#   runtime posted: {"errorType":"<type name>","errorMessage":"<Display of the error>"}.
#   Unlike AWS, which answers 200 with an `X-Amz-Function-Error: Unhandled` header, the emulator
#   sets no such header: a client has to treat both shapes as a function error.
# - When a function process exits or is killed (std::process::exit, abort, a signal, or an
#   error returned by main before the runtime starts, such as invalid configuration), the
#   emulator logs "ERROR command exited code=N" and does not restart it: the invocation in
#   flight never gets an answer, and with a concurrency of 1 neither does any later invocation
#   of that function (with more, a new instance takes them). Clients need their own timeout;
#   `restart` (or, without --ignore-changes, a file change) brings the function back.
# - `--timeout` is not used, on purpose: the emulator applies it to every HTTP request, also to
#   the runtime API's long-polled `next` request of an idle function, which then gets a 408
#   without a request id; lambda_runtime panics on that ("missing lambda-runtime-aws-request-id
#   header") and the function is dead. With `--timeout 120`, any function idle for 120 s died.
# - A function inherits the environment `start` ran in (so `RUST_LOG=debug scripts/services.sh
#   start` reaches it), plus AWS_LAMBDA_FUNCTION_NAME=<binary>, AWS_LAMBDA_RUNTIME_API,
#   AWS_LAMBDA_FUNCTION_VERSION=1, AWS_LAMBDA_FUNCTION_MEMORY_SIZE=4096 and
#   AWS_LAMBDA_MAX_CONCURRENCY=1 (checked). Its documentation adds per-function variables in
#   the function's Cargo.toml ([package.metadata.lambda.env]) or the root one
#   ([workspace.metadata.lambda.env]); --env-var KEY=VALUE works (checked), --env-file too.
# - SIGTERM stops the emulator and the function processes it started.
set -euo pipefail

readonly usage="usage: scripts/services.sh {install|start|stop|restart|status|env}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly kafka_port="${KL_KAFKA_PORT:-19092}"
readonly lambda_port="${KL_LAMBDA_PORT:-9000}"
readonly lambda_concurrency="${KL_LAMBDA_CONCURRENCY:-8}"
readonly state_dir="${KL_SERVICES_DIR:-$repo/.services}"
readonly tansu_version="${KL_TANSU_VERSION:-0.6.0}"
readonly cargo_lambda_version="${KL_CARGO_LAMBDA_VERSION:-1.9.2}"
readonly kafka_address="127.0.0.1:$kafka_port"
readonly lambda_endpoint="http://127.0.0.1:$lambda_port"

# Debian packages: a C toolchain, pkg-config and OpenSSL headers for rdkafka-sys (librdkafka is
# built by its own configure script and make for the host), cmake for the arm64 Lambda builds of
# infra/build.sh (there the functions build librdkafka with rdkafka's `cmake-build` feature, which
# honours the cross-compiler), zlib headers for libz-sys, curl for the readiness probes, procps
# for ps, stunnel4 as the TLS terminator in front of tansu for the TLS/mTLS tests (tansu's own TLS
# listener is not wired up). tansu's own build needs nothing more.
readonly system_packages=(build-essential pkg-config libssl-dev zlib1g-dev cmake curl ca-certificates procps stunnel4)

# A closed stderr (the caller piped into `head`, say) must not stop a `stop` half-way.
log() { printf 'services: %s\n' "$*" >&2 || true; }
die() {
  printf 'services: error: %s\n' "$*" >&2 || true
  exit 1
}

# Tools installed by cargo and pip land in directories a fresh login shell may not have on PATH.
add_tool_paths() {
  local dir python_dirs=()
  if command -v python3 >/dev/null 2>&1; then
    mapfile -t python_dirs < <(python3 -c 'import site, sysconfig
print(sysconfig.get_path("scripts"))
print(site.getuserbase() + "/bin")' 2>/dev/null || true)
  fi
  for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" "${python_dirs[@]}"; do
    if [[ -d "$dir" && ":$PATH:" != *":$dir:"* ]]; then
      PATH="$PATH:$dir"
    fi
  done
  export PATH
}

# ---------------------------------------------------------------------------------------------
# install

run_as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

install_system_packages() {
  local wanted=("${system_packages[@]}") missing=() package
  if ! command -v dpkg-query >/dev/null 2>&1; then
    # Not Debian: check the tools themselves and leave the installing to the user.
    local tool
    for tool in cc c++ make pkg-config curl ps stunnel; do
      command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    pkg-config --exists openssl 2>/dev/null || missing+=("OpenSSL development files")
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]}; install them with your package manager"
    return
  fi
  # python3 reads cargo metadata in `start`; pip installs cargo-lambda.
  command -v python3 >/dev/null 2>&1 || wanted+=(python3)
  if ! cargo_lambda_installed && ! python3 -m pip --version >/dev/null 2>&1; then
    wanted+=(python3-pip)
  fi
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
      missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    return
  fi
  log "installing Debian packages: ${missing[*]}"
  if ! run_as_root true; then
    die "missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install ${missing[*]}"
  fi
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

tansu_installed() {
  command -v tansu >/dev/null 2>&1 && [[ "$(tansu --version 2>/dev/null)" == *" $tansu_version"* ]]
}

install_tansu() {
  if tansu_installed; then
    return
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust with rustup first"
  # `dynostore` and `libsql` are the storage features the project settled on; the broker runs on
  # `memory://` here. The build takes about 12 minutes on 2 cores, once: cargo keeps the binary.
  log "installing tansu $tansu_version (cargo install, about 12 minutes on 2 cores)"
  cargo install tansu --locked --version "$tansu_version" --features dynostore,libsql
  tansu_installed || die "tansu $tansu_version is not on PATH after cargo install"
}

cargo_lambda_installed() {
  cargo lambda --version >/dev/null 2>&1
}

install_cargo_lambda() {
  if cargo_lambda_installed; then
    local installed
    installed="$(cargo lambda --version)"
    if [[ "$installed" != *" $cargo_lambda_version"* ]]; then
      log "warning: found $installed; the behaviour documented in this script is $cargo_lambda_version's"
    fi
    return
  fi
  # The PyPI package ships the prebuilt cargo-lambda binary: seconds instead of a long build.
  log "installing cargo-lambda $cargo_lambda_version (pip)"
  python3 -m pip install --quiet "cargo-lambda==$cargo_lambda_version" ||
    python3 -m pip install --quiet --user --break-system-packages "cargo-lambda==$cargo_lambda_version" ||
    die "pip could not install cargo-lambda $cargo_lambda_version"
  add_tool_paths
  cargo_lambda_installed || die "cargo-lambda is not on PATH after pip install"
}

cmd_install() {
  install_system_packages
  install_tansu
  install_cargo_lambda
  "$repo/scripts/postgres.sh" install
}

# ---------------------------------------------------------------------------------------------
# processes

# Prints the pid recorded for a service when that process still runs the service's program,
# so a stale pid file reused by an unrelated process is never signalled.
service_pid() {
  local name="$1" program="$2" pid
  [[ -f "$state_dir/$name.pid" ]] || return 1
  pid="$(<"$state_dir/$name.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$program" || return 1
  printf '%s\n' "$pid"
}

# Every service runs in its own session (setsid), so the processes it spawns, even ones that
# left its process group, are found by session id.
session_pids() {
  ps -e -o pid=,sid= | awk -v sid="$1" '$2 == sid { print $1 }'
}

# Starts a command in a new session, detached from the caller, and records its pid.
spawn() {
  local name="$1" workdir="$2"
  shift 2
  : >"$state_dir/$name.log"
  (
    cd "$workdir"
    # The inner shell writes its own pid, then execs the service: pid == session id == pgid.
    # shellcheck disable=SC2016
    setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' _ "$state_dir/$name.pid" "$@" \
      </dev/null >>"$state_dir/$name.log" 2>&1 9>&- &
  )
  local waited=0
  until [[ -s "$state_dir/$name.pid" ]]; do
    ((waited++ < 50)) || die "$name did not start; see $state_dir/$name.log"
    sleep 0.1
  done
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits until `probe` succeeds, failing early with the log's tail when the process dies.
wait_ready() {
  local name="$1" program="$2" timeout="$3" probe="$4" started="$SECONDS"
  until "$probe"; do
    if ! service_pid "$name" "$program" >/dev/null; then
      tail -n 30 "$state_dir/$name.log" >&2 || true
      die "$name exited while starting; its log is $state_dir/$name.log"
    fi
    if ((SECONDS - started > timeout)); then
      tail -n 30 "$state_dir/$name.log" >&2 || true
      die "$name did not answer within ${timeout}s; its log is $state_dir/$name.log"
    fi
    sleep 0.2
  done
}

# Stops the session recorded in the pid file, even when its leader is gone but children are not.
stop_service() {
  local name="$1" pid waited=0 left
  pid="$(cat "$state_dir/$name.pid" 2>/dev/null)" || return 0
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || [[ -z "$(session_pids "$pid")" ]]; then
    rm -f "$state_dir/$name.pid"
    return
  fi
  log "stopping $name (session $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || true
  while left="$(session_pids "$pid")" && [[ -n "$left" ]]; do
    if ((waited++ == 100)); then
      log "$name did not stop within 10s: killing $(echo "$left" | wc -l) process(es)"
      # shellcheck disable=SC2086 # one pid per word
      kill -KILL $left 2>/dev/null || true
    elif ((waited > 150)); then
      die "processes of $name are left after SIGKILL: $(echo "$left" | tr '\n' ' ')"
    fi
    sleep 0.1
  done
  rm -f "$state_dir/$name.pid"
}

# ---------------------------------------------------------------------------------------------
# tansu

broker_ready() {
  tansu topic list --broker "tcp://$kafka_address" >/dev/null 2>&1
}

start_tansu() {
  local pid started="$SECONDS"
  if pid="$(service_pid tansu "tansu broker")"; then
    if broker_ready; then
      log "tansu is already running (pid $pid) on $kafka_address"
      return
    fi
    log "tansu (pid $pid) does not answer on $kafka_address: restarting it"
    stop_service tansu
  fi
  port_in_use "$kafka_port" &&
    die "port $kafka_port is taken by a process this script did not start; free it or set KL_KAFKA_PORT"
  # The working directory is the state directory so that no stray .env file configures the broker.
  spawn tansu "$state_dir" tansu broker \
    --storage-engine memory://tansu/ \
    --listener-url "tcp://$kafka_address" \
    --advertised-listener-url "tcp://$kafka_address"
  wait_ready tansu "tansu broker" 60 broker_ready
  log "tansu $tansu_version is ready on $kafka_address ($((SECONDS - started))s)"
}

# ---------------------------------------------------------------------------------------------
# the Lambda emulator

emulator_ready() {
  local status
  status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST -d '{}' \
    "$lambda_endpoint/2015-03-31/functions/kl-readiness-probe/invocations")" || return 1
  [[ "$status" == 404 ]]
}

# Manifests of the workspace packages that are Lambda functions: a binary target and a direct
# dependency on lambda_runtime or on the handler SDK.
function_manifests() {
  cargo metadata --no-deps --format-version 1 --manifest-path "$repo/Cargo.toml" |
    python3 -c '
import json, sys
for package in json.load(sys.stdin)["packages"]:
    has_bin = any("bin" in target["kind"] for target in package["targets"])
    deps = {dep["name"] for dep in package["dependencies"] if dep.get("kind") is None}
    if has_bin and deps & {"lambda_runtime", "kafka-lambda-handler"}:
        print(package["manifest_path"])'
}

# Builds each function the way the emulator's `cargo run --bin <name>` will: one package
# selected, default features, so the emulator finds the binaries fresh.
build_functions() {
  local manifests manifest started="$SECONDS"
  manifests="$(function_manifests)" || die "cargo metadata failed for $repo"
  while IFS= read -r manifest; do
    [[ -n "$manifest" ]] || continue
    log "building function binaries of ${manifest#"$repo"/}"
    (cd "$repo" && cargo build --quiet --manifest-path "$manifest" --bins) ||
      die "the function in ${manifest#"$repo"/} does not build"
  done <<<"$manifests"
  log "function binaries are built ($((SECONDS - started))s)"
}

start_lambda() {
  local pid started
  if pid="$(service_pid lambda "lambda watch")"; then
    if emulator_ready; then
      log "the Lambda emulator is already running (pid $pid) at $lambda_endpoint;" \
        "it serves the code each function had when first invoked: 'restart' picks up changes"
      return
    fi
    log "the Lambda emulator (pid $pid) does not answer at $lambda_endpoint: restarting it"
    stop_service lambda
  fi
  port_in_use "$lambda_port" &&
    die "port $lambda_port is taken by a process this script did not start; free it or set KL_LAMBDA_PORT"
  build_functions
  started="$SECONDS"
  spawn lambda "$repo" cargo lambda watch \
    --invoke-address 127.0.0.1 \
    --invoke-port "$lambda_port" \
    --ignore-changes \
    --concurrency "$lambda_concurrency" \
    --color never
  wait_ready lambda "lambda watch" 60 emulator_ready
  log "the Lambda emulator is ready at $lambda_endpoint ($((SECONDS - started))s)"
}

# ---------------------------------------------------------------------------------------------
# commands

with_lock() {
  mkdir -p "$state_dir"
  exec 9>"$state_dir/lock"
  # Test processes may call `start` at the same time: one starts, the others then reuse.
  flock -w 900 9 || die "another services.sh held $state_dir/lock for 15 minutes"
}

cmd_start() {
  with_lock
  cmd_install
  for tool in tansu curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run scripts/services.sh install"
  done
  start_tansu
  "$repo/scripts/postgres.sh" start
  start_lambda
}

cmd_stop() {
  with_lock
  stop_service lambda
  stop_service tansu
  "$repo/scripts/postgres.sh" stop
  local port
  for port in "$kafka_port" "$lambda_port"; do
    if port_in_use "$port"; then
      log "warning: port $port still answers; it belongs to a process this script did not start"
    fi
  done
}

cmd_status() {
  local healthy=0 pid
  if pid="$(service_pid tansu "tansu broker")"; then
    if broker_ready; then
      echo "tansu: running (pid $pid), answers on $kafka_address"
    else
      echo "tansu: running (pid $pid), does not answer on $kafka_address"
      healthy=1
    fi
  else
    echo "tansu: not running"
    healthy=1
  fi
  if pid="$(service_pid lambda "lambda watch")"; then
    if emulator_ready; then
      echo "lambda emulator: running (pid $pid), answers at $lambda_endpoint"
    else
      echo "lambda emulator: running (pid $pid), does not answer at $lambda_endpoint"
      healthy=1
    fi
  else
    echo "lambda emulator: not running"
    healthy=1
  fi
  return "$healthy"
}

main() {
  add_tool_paths
  case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart)
      cmd_stop
      cmd_start
      ;;
    status) cmd_status ;;
    env) echo "export KAFKA_BOOTSTRAP_SERVERS=$kafka_address LAMBDA_ENDPOINT=$lambda_endpoint" ;;
    *) die "$usage" ;;
  esac
}

main "$@"
