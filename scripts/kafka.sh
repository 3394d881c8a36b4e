#!/usr/bin/env bash
# The Apache Kafka broker (KRaft mode, no ZooKeeper) of kafka-lambda's tests, demo and
# benchmarks, run straight from its Maven Central artifacts: no tarball, no Docker.
#
# Usage: scripts/kafka.sh {install|version|libs|run-class CLASS [ARG…]|format CONFIG [ARG…]|broker CONFIG}
#   install    Java 17 or newer (Debian's default-jre-headless) and Maven from Debian's packages
#              when missing, then org.apache.kafka:kafka_2.13 and kafka-tools with their runtime dependencies and a
#              log4j2 binding (scripts/kafka/pom.xml) into the cache, once; later calls reuse it.
#              A cold install downloads ~55 MB and takes ~20 s (Maven's own plugins, first
#              time only, add ~10 s).
#   version    prints the Apache Kafka version this script runs.
#   libs       prints the directory of the broker's jars (after `install`).
#   run-class  runs one of Kafka's command-line classes with the broker's jars, logging errors
#              only: e.g. `run-class org.apache.kafka.tools.AclCommand --bootstrap-server …`.
#   format     formats a KRaft storage directory for CONFIG (kafka.tools.StorageTool format
#              --config CONFIG, plus ARG…: --cluster-id, --standalone or --initial-controllers,
#              --add-scram …).
#   broker     runs the broker in the foreground (exec: the caller's pid is the broker's), logging
#              to stdout as scripts/kafka/log4j2.properties says. KL_KAFKA_HEAP sets its heap
#              (default -Xms256m -Xmx1g).
#
# Settings, from the environment:
#   KL_KAFKA_VERSION  Apache Kafka version                          (4.4.0)
#   KL_CACHE_DIR      where installed brokers are kept               (~/.cache/kafka-lambda)
#
# scripts/services.sh runs the shared broker of the tests with this script; the tests' private
# clusters (kafka_lambda_tests::KafkaCluster) and scripts/bench.sh use it too.
set -euo pipefail

readonly usage="usage: scripts/kafka.sh {install|version|libs|run-class CLASS [ARG…]|format CONFIG [ARG…]|broker CONFIG}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly kafka_version="${KL_KAFKA_VERSION:-4.4.0}"
readonly log4j_version=2.26.1
readonly slf4j_version=2.0.17
readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}"
readonly kafka_home="$cache_dir/kafka-$kafka_version"
readonly libs="$kafka_home/libs"
# Written last by `install`: a half-copied directory (an interrupted install) is not reused.
readonly complete_marker="$kafka_home/.complete"

readonly script_name=kafka
# shellcheck source=scripts/lib/common.sh
. "$here/lib/common.sh"

# The major version of the `java` on PATH (17 for "17.0.15"), or nothing.
java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

install_java() {
  local major
  major="$(java_major 2>/dev/null || true)"
  [[ -n "$major" ]] && ((major >= 17)) && return
  install_debian_packages "the broker needs Java 17 or newer" default-jre-headless
  major="$(java_major 2>/dev/null || true)"
  [[ -n "$major" ]] && ((major >= 17)) || die "java on PATH is still older than 17 (${major:-none})"
}

cmd_install() {
  install_java
  [[ -f "$complete_marker" ]] && return
  command -v mvn >/dev/null 2>&1 || install_debian_packages "the broker's install needs Maven" maven
  mkdir -p "$cache_dir"
  # Several callers may install at once (the tests' services and the benchmark's): one
  # downloads, the others wait and then find it complete.
  exec 8>"$cache_dir/install.lock"
  flock -w 600 8 || die "another install held $cache_dir/install.lock for 10 minutes"
  [[ -f "$complete_marker" ]] && return
  local started="$SECONDS" download="$kafka_home.download"
  log "installing Apache Kafka $kafka_version from Maven Central into $kafka_home"
  rm -rf "$download"
  mkdir -p "$download"
  mvn --batch-mode --quiet -Dstyle.color=never --file "$here/kafka/pom.xml" \
    -Dkafka.version="$kafka_version" -Dlog4j.version="$log4j_version" \
    -Dslf4j.version="$slf4j_version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$download" \
    >"$cache_dir/install.log" 2>&1 || {
    tail -n 30 "$cache_dir/install.log" >&2
    die "Maven could not fetch Apache Kafka $kafka_version (is Maven Central reachable?); its log is $cache_dir/install.log"
  }
  [[ -f "$download/kafka_2.13-$kafka_version.jar" ]] ||
    die "kafka_2.13-$kafka_version.jar is missing after the download"
  # The jars appear under $libs whole or not at all.
  rm -rf "$kafka_home"
  mkdir -p "$kafka_home"
  mv "$download" "$libs"
  touch "$complete_marker"
  log "Apache Kafka $kafka_version is installed ($((SECONDS - started))s)"
}

require_installed() {
  [[ -f "$complete_marker" ]] || die "Apache Kafka $kafka_version is not installed: run scripts/kafka.sh install"
}

run_java() {
  local log4j="$1"
  shift
  exec java -Dlog4j2.configurationFile="$here/kafka/$log4j" -cp "$libs/*" "$@"
}

main() {
  case "${1:-}" in
    install) cmd_install ;;
    version) printf '%s\n' "$kafka_version" ;;
    libs)
      require_installed
      printf '%s\n' "$libs"
      ;;
    run-class)
      (($# >= 2)) || die "$usage"
      require_installed
      shift
      # A tool is short-lived: a small heap and the client compiler start it fastest.
      run_java log4j2-tools.properties -Xmx256m -XX:TieredStopAtLevel=1 "$@"
      ;;
    format)
      (($# >= 2)) || die "$usage"
      require_installed
      local config="$2"
      shift 2
      run_java log4j2-tools.properties -Xmx256m -XX:TieredStopAtLevel=1 \
        kafka.tools.StorageTool format --config "$config" --ignore-formatted "$@"
      ;;
    broker)
      (($# == 2)) || die "$usage"
      require_installed
      # shellcheck disable=SC2086 # the heap settings are several words
      run_java log4j2.properties ${KL_KAFKA_HEAP:--Xms256m -Xmx1g} kafka.Kafka "$2"
      ;;
    *) die "$usage" ;;
  esac
}

main "$@"
