#!/usr/bin/env bash
# AWS's event-ruler (the open-source engine of the EventBridge pattern language, which Lambda's
# FilterCriteria use) as a differential oracle for the poller's filter: poller/tests/filter_oracle.rs.
#
# Usage: tests/event-ruler/build.sh [run]
#   (none)  resolves event-ruler from Maven Central (pom.xml beside this script) and compiles
#           EventRulerOracle.java against it into the cache, once: again only when pom.xml or the
#           source changes. Prints the class path (cache classes + jars) as its last line.
#   run     the same, then runs the oracle on stdin/stdout (JSON lines in, one verdict a line out;
#           see EventRulerOracle.java), with the java beside the javac that compiled it.
# Logs go to stderr. A cold build (Maven's repository empty: ~13 MB downloaded) takes ~20 s;
# a warm one nothing.
#
# Settings, from the environment:
#   KL_CACHE_DIR  where the oracle is built, in event-ruler/   (~/.cache/kafka-lambda)
set -euo pipefail

readonly script_name="event-ruler"
readonly src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/lib/common.sh
source "$src/../../scripts/lib/common.sh"

readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}"
readonly home="$cache_dir/event-ruler"

find_javac() {
  if command -v javac >/dev/null 2>&1; then
    command -v javac
    return
  fi
  local candidate
  while IFS= read -r candidate; do
    [[ -x "$candidate" ]] && printf '%s\n' "$candidate" && return
  done < <(printf '%s\n' /usr/lib/jvm/*/bin/javac | sort -V -r)
  return 1
}

build() {
  local checksum marker="$home/.complete" javac started="$SECONDS"
  checksum="$(cat "$src/pom.xml" "$src/EventRulerOracle.java" | sha256sum | cut -d' ' -f1)"
  [[ -f "$marker" && "$(<"$marker")" == "$checksum" ]] && return
  command -v mvn >/dev/null 2>&1 || install_debian_packages "event-ruler comes through Maven" maven
  if ! javac="$(find_javac)"; then
    install_debian_packages "EventRulerOracle.java needs a JDK" default-jdk-headless
    javac="$(find_javac)" || die "no javac after installing default-jdk-headless"
  fi
  log "building the event-ruler oracle into $home"
  rm -rf "$home"
  mkdir -p "$home/classes"
  mvn --batch-mode --quiet -Dstyle.color=never -f "$src/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:2.8:build-classpath \
    -Dmdep.outputFile="$home/jars" >"$home/install.log" 2>&1 || {
    tail -n 30 "$home/install.log" >&2
    die "Maven could not fetch event-ruler (is Maven Central reachable?); its log is $home/install.log"
  }
  "$javac" -nowarn -encoding UTF-8 -d "$home/classes" -cp "$(<"$home/jars")" \
    "$src/EventRulerOracle.java" || die "$javac could not compile EventRulerOracle.java"
  printf '%s\n' "$(dirname "$javac")/java" >"$home/java"
  printf '%s\n' "$checksum" >"$marker"
  log "the event-ruler oracle is built ($((SECONDS - started))s)"
}

mkdir -p "$cache_dir"
# One build at a time (tests run in parallel processes).
exec 9>"$cache_dir/event-ruler.lock"
flock -w 600 9 || die "another build held $cache_dir/event-ruler.lock for 10 minutes"
build
exec 9>&-
classpath="$home/classes:$(<"$home/jars")"
case "${1:-}" in
  "") printf '%s\n' "$classpath" ;;
  run) exec "$(<"$home/java")" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$classpath" EventRulerOracle ;;
  *) die "usage: build.sh [run]" ;;
esac
