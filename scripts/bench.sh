#!/usr/bin/env bash
# kafka-lambda's benchmarks against the physical limit of the machine, in one command:
#
#   scripts/bench.sh                  # everything; writes the results into BENCHMARKS.md
#   scripts/bench.sh --records 200000 # a quicker run (any `kafka-lambda-bench all` option)
#
# Installs what is missing (scripts/services.sh install), builds the poller, the benchmark,
# log-etl and the no-op function in release, starts a private Apache Kafka broker and a private
# `cargo lambda watch` on their own ports, so the gigabyte topics never reach the shared
# test services, runs `kafka-lambda-bench all`, and stops the private services on exit.
# BENCHMARKS.md says what each number means; a full run takes about 20 minutes on 2 cores.
#
# Settings, from the environment:
#   BENCH_KAFKA_PORT     private broker's first port (it takes five more) (19192)
#   BENCH_LAMBDA_PORT    private emulator port                        (9190)
#   BENCH_PG_PORT        private PostgreSQL port (services.sh starts one for pg-sink; unused
#                        here)                                        (15532)
#   BENCH_REGISTRY_PORT  private Apicurio Registry port (goal 7)      (18181)
#   BENCH_GLUE_PORT      private moto port (started, unused here)     (18182)
#   BENCH_SERVICES_DIR   its logs and pid files                       (<repo>/.services/bench)
#   BENCH_REPORT         the file whose results section is rewritten  (<repo>/BENCHMARKS.md)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly kafka_port="${BENCH_KAFKA_PORT:-19192}"
readonly lambda_port="${BENCH_LAMBDA_PORT:-9190}"
readonly pg_port="${BENCH_PG_PORT:-15532}"
readonly registry_port="${BENCH_REGISTRY_PORT:-18181}"
readonly glue_port="${BENCH_GLUE_PORT:-18182}"
readonly state_dir="${BENCH_SERVICES_DIR:-$repo/.services/bench}"
readonly report="${BENCH_REPORT:-$repo/BENCHMARKS.md}"
readonly target_dir="${CARGO_TARGET_DIR:-$repo/target}"
cd "$repo"

readonly script_name=bench
# shellcheck source=scripts/lib/common.sh
. "$repo/scripts/lib/common.sh"

# The private services: scripts/services.sh with its own ports and state directory. Four
# instances of a function at most, one per partition of the benchmark topics.
services() {
  KL_KAFKA_PORT="$kafka_port" KL_LAMBDA_PORT="$lambda_port" KL_PG_PORT="$pg_port" \
    KL_REGISTRY_PORT="$registry_port" KL_GLUE_PORT="$glue_port" KL_SERVICES_DIR="$state_dir" \
    KL_LAMBDA_CONCURRENCY=4 "$repo/scripts/services.sh" "$@"
}

scripts/services.sh install
log "building in release: the poller, the benchmark, log-etl, bench-noop"
cargo build --release --quiet -p kafka-lambda-poller -p kafka-lambda-bench -p log-etl \
  -p kafka-lambda-bench-noop

# Fresh services: the cold start is measured on an emulator that has not started log-etl yet.
services stop
trap 'services stop' EXIT
services start

broker_pid="$(<"$state_dir/kafka.pid")"
log "running the benchmarks (broker 127.0.0.1:$kafka_port, emulator 127.0.0.1:$lambda_port)"
"$target_dir/release/kafka-lambda-bench" \
  --bootstrap "127.0.0.1:$kafka_port" \
  --emulator "http://127.0.0.1:$lambda_port" \
  --poller "$target_dir/release/kafka-lambda-poller" \
  --work-dir "$target_dir/bench" \
  --broker-pid "$broker_pid" \
  --registry "http://127.0.0.1:$registry_port/apis/ccompat/v7" \
  all \
  --functions "$target_dir/release/log-etl,$target_dir/release/bench-noop,$target_dir/debug/log-etl" \
  --report "$report" \
  "$@"
