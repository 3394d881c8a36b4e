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

log() { printf 'kafka: %s\n' "$*" >&2 || true; }
die() {
  printf 'kafka: error: %s\n' "$*" >&2 || true
  exit 1
}

run_as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

# The major version of the `java` on PATH (17 for "17.0.15"), or nothing.
java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

install_java_and_maven() {
  local missing=() major
  major="$(java_major 2>/dev/null || true)"
  if [[ -z "$major" ]] || ((major < 17)); then
    missing+=(default-jre-headless)
  fi
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  ((${#missing[@]} == 0)) && return
  command -v apt-get >/dev/null 2>&1 ||
    die "missing: ${missing[*]} (the broker needs Java 17 or newer, its install Maven); install them with your package manager"
  run_as_root true ||
    die "missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  major="$(java_major)"
  [[ -n "$major" ]] && ((major >= 17)) || die "java on PATH is still older than 17 (${major:-none})"
}

cmd_install() {
  install_java_and_maven
  [[ -f "$complete_marker" ]] && return
  local started="$SECONDS"
  log "installing Apache Kafka $kafka_version from Maven Central into $kafka_home"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn --batch-mode --quiet -Dstyle.color=never --file "$here/kafka/pom.xml" \
    -Dkafka.version="$kafka_version" -Dlog4j.version="$log4j_version" \
    -Dslf4j.version="$slf4j_version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" ||
    die "Maven could not fetch Apache Kafka $kafka_version (is Maven Central reachable?)"
  [[ -n "$(ls "$libs"/kafka_2.13-"$kafka_version".jar 2>/dev/null)" ]] ||
    die "kafka_2.13-$kafka_version.jar is missing from $libs after the download"
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
