#!/usr/bin/env bash
# The real services behind kafka-lambda's demo and integration tests: an Apache Kafka broker
# (4.x, KRaft, from Maven Central through scripts/kafka.sh) and the local AWS Lambda emulator
# (`cargo lambda watch`), plus the private PostgreSQL server of the pg-sink example, which
# scripts/postgres.sh manages on its own, and the schema registries of the schema-registry tests
# (Apicurio Registry's Confluent-compatible API, moto's AWS Glue), which scripts/registry.sh
# manages on its own.
#
# Usage: scripts/services.sh {install|start|stop|restart|status|env} [--demo]
#   install  Debian packages the build and tests need (Java and Maven among them), Apache Kafka,
#            cargo-lambda and cargo-nextest, each only when missing; PostgreSQL through
#            `scripts/postgres.sh install`, the registries through `scripts/registry.sh install`.
#   start    installs what is missing, starts the services in the background, or reuses them
#            when they already run, and returns once each one answers. The broker starts on a
#            freshly formatted storage directory (no topic of an earlier start is left). Logs,
#            pid files, the broker's config, data and certificates are kept in .services/
#            (gitignored).
#   --demo   (with install, start or restart) only what scripts/demo.sh uses: the Debian
#            packages, Apache Kafka, cargo-lambda, the broker and the emulator with the one
#            function the demo invokes (examples/log-etl) built; no cargo-nextest, PostgreSQL,
#            registries or other function builds. A later full `start` adds what is missing.
#   stop     stops the services with every process they started, then checks that none is
#            left; then `scripts/postgres.sh stop` and `scripts/registry.sh stop`. (`start` runs
#            `scripts/postgres.sh start` and `scripts/registry.sh start` too.)
#   restart  stop, then start: the emulator then serves the functions' current code (see below).
#   status   tells whether each service runs and answers; exits 0 only when both do.
#   env      prints the `export` line for the variables the tests and the demo read:
#            KAFKA_BOOTSTRAP_SERVERS (PLAINTEXT), KAFKA_SASL_PLAINTEXT_SERVERS,
#            KAFKA_SSL_SERVERS, KAFKA_MTLS_SERVERS, KAFKA_SASL_SSL_SERVERS, KAFKA_TLS_DIR and
#            LAMBDA_ENDPOINT; then, on a second line (`scripts/registry.sh env`),
#            KL_SCHEMA_REGISTRY_URL, KL_GLUE_ENDPOINT and KL_REGISTRY_PYTHON.
#
# The broker has one listener per security protocol the poller supports, on consecutive ports
# from KL_KAFKA_PORT (P):
#   P      PLAINTEXT             P+1  CONTROLLER (KRaft, not for clients)
#   P+2    SASL_PLAINTEXT        P+3  SSL (server certificate only)
#   P+4    SSL with client certificates required (mTLS)
#   P+5    SASL_SSL
# SASL mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, with these test-only users:
#   kl-plain / kl-plain-secret            PLAIN                         super user
#   kl-scram / kl-scram-secret            SCRAM-SHA-256, SCRAM-SHA-512  super user
#   kl-restricted / kl-restricted-secret  PLAIN, SCRAM-SHA-512          only what ACLs grant
# The StandardAuthorizer is on: ANONYMOUS (PLAINTEXT and SSL without a client certificate), the
# two super users and the mTLS client certificate may do anything; kl-restricted may do only what
# a test grants it (scripts/kafka.sh run-class org.apache.kafka.tools.AclCommand …). The PEM
# files of $KAFKA_TLS_DIR: ca.pem (the CA every listener's certificate comes from), ca.key,
# client.pem and client.key (CN=kafka-lambda-test-client, trusted by the mTLS listener).
#
# Settings, from the environment:
#   KL_KAFKA_PORT          the broker's first port (see above)           (19092)
#   KL_LAMBDA_PORT         emulator invoke API port                      (9000)
#   KL_LAMBDA_CONCURRENCY  instances of one function at most             (8)
#   KL_SERVICES_DIR        logs, pid files and the lock                  (<repo>/.services)
#   KL_KAFKA_VERSION       Apache Kafka version (scripts/kafka.sh)       (4.4.0)
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

readonly usage="usage: scripts/services.sh {install|start|stop|restart|status|env} [--demo]"

# The scope of install/start: everything the tests use, or what the demo uses (--demo).
demo_only=false
# The function packages the demo invokes; `start --demo` builds only these.
readonly demo_functions=(log-etl)

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly kafka_port="${KL_KAFKA_PORT:-19092}"
readonly kafka_controller_port=$((kafka_port + 1))
readonly kafka_sasl_port=$((kafka_port + 2))
readonly kafka_ssl_port=$((kafka_port + 3))
readonly kafka_mtls_port=$((kafka_port + 4))
readonly kafka_sasl_ssl_port=$((kafka_port + 5))
readonly lambda_port="${KL_LAMBDA_PORT:-9000}"
readonly lambda_concurrency="${KL_LAMBDA_CONCURRENCY:-8}"
readonly state_dir="${KL_SERVICES_DIR:-$repo/.services}"
readonly kafka_version="${KL_KAFKA_VERSION:-4.4.0}"
readonly kafka_dir="$state_dir/kafka"
readonly tls_dir="$kafka_dir/tls"
readonly plain_user=kl-plain plain_password=kl-plain-secret
readonly scram_user=kl-scram scram_password=kl-scram-secret
readonly restricted_user=kl-restricted restricted_password=kl-restricted-secret
readonly mtls_client_cn=kafka-lambda-test-client
readonly cargo_lambda_version="${KL_CARGO_LAMBDA_VERSION:-1.9.2}"
readonly kafka_address="127.0.0.1:$kafka_port"
readonly lambda_endpoint="http://127.0.0.1:$lambda_port"

# Debian packages: a C toolchain, pkg-config and OpenSSL headers for rdkafka-sys (librdkafka is
# built by its own configure script and make for the host), cmake for the arm64 Lambda builds of
# infra/build.sh (there the functions build librdkafka with rdkafka's `cmake-build` feature, which
# honours the cross-compiler), zlib headers for libz-sys, curl for the readiness probes, procps
# for ps, openssl for the test certificates. Java and Maven for the broker: scripts/kafka.sh.
readonly system_packages=(build-essential pkg-config libssl-dev zlib1g-dev cmake curl ca-certificates procps openssl)

# A closed stderr (the caller piped into `head`, say) must not stop a `stop` half-way: `log`
# and `die` of scripts/lib/common.sh ignore it.
readonly script_name=services
# shellcheck source=scripts/lib/common.sh
. "$repo/scripts/lib/common.sh"
# shellcheck source=scripts/lib/processes.sh
. "$repo/scripts/lib/processes.sh"

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

install_system_packages() {
  local wanted=("${system_packages[@]}") missing=() package
  if ! command -v dpkg-query >/dev/null 2>&1; then
    # Not Debian: check the tools themselves and leave the installing to the user.
    local tool
    for tool in cc c++ make pkg-config curl ps openssl; do
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

# The suite relies on cargo-nextest's per-test timeouts and one process per test.
install_cargo_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then
    return
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust with rustup first"
  log "installing cargo-nextest (cargo install, a few minutes once)"
  cargo install --locked --quiet cargo-nextest || die "cargo install cargo-nextest failed"
}

cmd_install() {
  install_system_packages
  "$repo/scripts/kafka.sh" install
  install_cargo_lambda
  if [[ "$demo_only" == true ]]; then
    return
  fi
  install_cargo_nextest
  "$repo/scripts/postgres.sh" install
  "$repo/scripts/registry.sh" install
}


# ---------------------------------------------------------------------------------------------
# Apache Kafka

# Answers when the broker serves a Metadata request naming at least one broker: the listener is
# open only once the broker has started, but a Metadata answer is what clients need.
broker_answers() {
  python3 - "$1" <<'PY'
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
try:
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.settimeout(5)
        client = b"kl-probe"
        # Metadata v1: api_key 3, version 1, correlation id 7, client id; topics = null (all).
        body = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", -1)
        sock.sendall(struct.pack(">i", len(body)) + body)
        header = b""
        while len(header) < 12:
            chunk = sock.recv(12 - len(header))
            if not chunk:
                sys.exit(1)
            header += chunk
        _size, correlation, brokers = struct.unpack(">iii", header)
        sys.exit(0 if correlation == 7 and brokers > 0 else 1)
except OSError:
    sys.exit(1)
PY
}

broker_ready() {
  broker_answers "$kafka_address"
}

# The test PKI: a CA, the broker's certificate (127.0.0.1 and localhost) and one client
# certificate for mTLS, PEM files made with openssl once and kept in $tls_dir. Keys are
# unencrypted PKCS#8, which both the broker (PEM keystores) and librdkafka read.
make_tls_material() {
  [[ -f "$tls_dir/client.pem" ]] && return
  command -v openssl >/dev/null 2>&1 || die "openssl is missing: run scripts/services.sh install"
  local work
  work="$(mktemp -d)"
  # Every step must succeed: `&&` chains them (set -e does not apply inside `( … ) ||`).
  if ! (
    cd "$work" &&
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.pem \
        -subj "/CN=kafka-lambda test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext &&
      openssl x509 -req -days 3650 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -extfile server.ext -out server.pem &&
      openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=$mtls_client_cn" &&
      printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
      openssl x509 -req -days 3650 -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -extfile client.ext -out client.pem &&
      # The broker's keystore: its key, then its certificate chain.
      cat server.key server.pem ca.pem >server-keystore.pem
  ) >"$state_dir/openssl.log" 2>&1; then
    rm -rf "$work"
    die "openssl could not make the test certificates; see $state_dir/openssl.log"
  fi
  mkdir -p "$tls_dir"
  cp "$work"/{ca.pem,ca.key,server-keystore.pem,client.pem,client.key} "$tls_dir/"
  rm -rf "$work"
}

# One broker that is also its own controller, with a listener per security protocol the poller
# supports. The authorizer is on, and every principal of the harness is a super user except
# $restricted_user, so the access-control tests grant that one user exactly what they test.
write_broker_config() {
  local scram_jaas plain_jaas
  plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required user_$plain_user=\"$plain_password\" user_$restricted_user=\"$restricted_password\";"
  scram_jaas="org.apache.kafka.common.security.scram.ScramLoginModule required;"
  cat >"$kafka_dir/server.properties" <<CONFIG
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$kafka_controller_port
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller_port,SASL_PLAINTEXT://127.0.0.1:$kafka_sasl_port,SSL://127.0.0.1:$kafka_ssl_port,MTLS://127.0.0.1:$kafka_mtls_port,SASL_SSL://127.0.0.1:$kafka_sasl_ssl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port,SASL_PLAINTEXT://127.0.0.1:$kafka_sasl_port,SSL://127.0.0.1:$kafka_ssl_port,MTLS://127.0.0.1:$kafka_mtls_port,SASL_SSL://127.0.0.1:$kafka_sasl_ssl_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
log.dirs=$kafka_dir/data

sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$scram_jaas
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$scram_jaas
ssl.keystore.type=PEM
ssl.keystore.location=$tls_dir/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls_dir/ca.pem
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS;User:$plain_user;User:$scram_user;User:CN=$mtls_client_cn

# One node: internal topics with one replica and few partitions (quick to create), no delay
# before a new group's first rebalance.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# As on Amazon MSK: a topic exists only once created, so a misspelt topic is an error.
auto.create.topics.enable=false
num.partitions=1
# Compacted topics of the tests are cleaned within seconds.
log.cleaner.backoff.ms=1000
CONFIG
}

start_kafka() {
  local pid started="$SECONDS" cluster_id port
  if pid="$(service_pid kafka "kafka.Kafka")"; then
    if broker_ready; then
      log "Apache Kafka is already running (pid $pid) on $kafka_address"
      return
    fi
    log "Apache Kafka (pid $pid) does not answer on $kafka_address: restarting it"
    stop_service kafka
  fi
  for port in "$kafka_port" "$kafka_controller_port" "$kafka_sasl_port" "$kafka_ssl_port" \
    "$kafka_mtls_port" "$kafka_sasl_ssl_port"; do
    if port_in_use "$port"; then
      die "port $port is taken by a process this script did not start; free it or set KL_KAFKA_PORT (the broker takes it and the five ports after it)"
    fi
  done
  mkdir -p "$kafka_dir"
  make_tls_material
  write_broker_config
  # A fresh cluster at every start: no topic, group or offset of an earlier run is left.
  rm -rf "$kafka_dir/data"
  # A KRaft cluster id; one starting with '-' would be read as an option by the storage tool.
  cluster_id="$(python3 -c 'import base64, uuid
while True:
    id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not id.startswith("-"):
        print(id)
        break')"
  if ! "$repo/scripts/kafka.sh" format "$kafka_dir/server.properties" \
    --cluster-id "$cluster_id" --standalone \
    --add-scram "SCRAM-SHA-256=[name=$scram_user,password=$scram_password]" \
    --add-scram "SCRAM-SHA-512=[name=$scram_user,password=$scram_password]" \
    --add-scram "SCRAM-SHA-512=[name=$restricted_user,password=$restricted_password]" \
    >"$kafka_dir/format.log" 2>&1; then
    cat "$kafka_dir/format.log" >&2
    die "formatting the broker's storage failed; see $kafka_dir/format.log"
  fi
  # The working directory is the broker's own, so that nothing of the caller's is picked up.
  spawn kafka "$kafka_dir" "$repo/scripts/kafka.sh" broker "$kafka_dir/server.properties"
  wait_ready kafka "kafka.Kafka" 120 broker_ready
  log "Apache Kafka $kafka_version is ready on $kafka_address ($((SECONDS - started))s)"
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
# dependency on lambda_runtime or on the handler SDK; with --demo, only the demo's.
function_manifests() {
  local only=""
  if [[ "$demo_only" == true ]]; then
    only="${demo_functions[*]}"
  fi
  cargo metadata --no-deps --format-version 1 --manifest-path "$repo/Cargo.toml" |
    python3 -c '
import json, sys
only = set(sys.argv[1].split())
for package in json.load(sys.stdin)["packages"]:
    has_bin = any("bin" in target["kind"] for target in package["targets"])
    deps = {dep["name"] for dep in package["dependencies"] if dep.get("kind") is None}
    if has_bin and deps & {"lambda_runtime", "kafka-lambda-handler"} and (not only or package["name"] in only):
        print(package["manifest_path"])' "$only"
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
  for tool in java curl python3 openssl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run scripts/services.sh install"
  done
  start_kafka
  if [[ "$demo_only" == false ]]; then
    "$repo/scripts/postgres.sh" start
    "$repo/scripts/registry.sh" start
  fi
  start_lambda
}

cmd_stop() {
  with_lock
  stop_service lambda
  stop_service kafka
  "$repo/scripts/postgres.sh" stop
  "$repo/scripts/registry.sh" stop
  local port
  for port in "$kafka_port" "$kafka_controller_port" "$kafka_sasl_port" "$kafka_ssl_port" \
    "$kafka_mtls_port" "$kafka_sasl_ssl_port" "$lambda_port"; do
    if port_in_use "$port"; then
      log "warning: port $port still answers; it belongs to a process this script did not start"
    fi
  done
}

cmd_status() {
  local healthy=0 pid
  if pid="$(service_pid kafka "kafka.Kafka")"; then
    if broker_ready; then
      echo "kafka: running (pid $pid), answers on $kafka_address"
    else
      echo "kafka: running (pid $pid), does not answer on $kafka_address"
      healthy=1
    fi
  else
    echo "kafka: not running"
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
  if [[ "${2:-}" == --demo ]]; then
    demo_only=true
  elif (($# > 1)); then
    die "$usage"
  fi
  case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart)
      cmd_stop
      cmd_start
      ;;
    status) cmd_status ;;
    env)
      echo "export KAFKA_BOOTSTRAP_SERVERS=$kafka_address" \
        "KAFKA_SASL_PLAINTEXT_SERVERS=127.0.0.1:$kafka_sasl_port" \
        "KAFKA_SSL_SERVERS=127.0.0.1:$kafka_ssl_port" \
        "KAFKA_MTLS_SERVERS=127.0.0.1:$kafka_mtls_port" \
        "KAFKA_SASL_SSL_SERVERS=127.0.0.1:$kafka_sasl_ssl_port" \
        "KAFKA_TLS_DIR=$tls_dir" \
        "LAMBDA_ENDPOINT=$lambda_endpoint"
      "$repo/scripts/registry.sh" env
      ;;
    *) die "$usage" ;;
  esac
}

main "$@"
