#!/usr/bin/env bash
# Installs the `java` conformance function: Maven copies the jars pom.xml names (AWS's Java
# runtime interface client, aws-lambda-java-events, aws-lambda-java-core, from Maven Central,
# through the default local repository ~/.m2) into
# ${KL_CACHE_DIR:-~/.cache/kafka-lambda}/conformance/java/lib, javac compiles Handler.java into
# .../classes (never in the work tree), and the last stdout line is the command aws-lambda-rie
# runs:
#
#   <java> -cp <cache>/classes:<cache>/lib/* com.amazonaws.services.lambda.runtime.api.client.AWSLambda example.Handler::handleRequest
#
# Current when the marker holds the checksum of pom.xml, Handler.java and the JDK's version:
# then nothing is resolved or compiled again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly script_name=conformance/java
# shellcheck source=scripts/lib/common.sh
. "$here/../../../scripts/lib/common.sh"

readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}/conformance/java"
readonly marker="$cache_dir/.complete"
readonly main_class=com.amazonaws.services.lambda.runtime.api.client.AWSLambda
readonly handler=example.Handler::handleRequest

# A javac (JDK 11 or newer: the client needs 8, `--release` needs 9+): on PATH, or the newest
# under /usr/lib/jvm.
find_javac() {
  if command -v javac >/dev/null 2>&1; then
    readlink -f "$(command -v javac)"
    return
  fi
  local candidate
  while IFS= read -r candidate; do
    [[ -x "$candidate" ]] && readlink -f "$candidate" && return
  done < <(printf '%s\n' /usr/lib/jvm/*/bin/javac | sort -V -r)
  return 1
}

main() {
  local javac java checksum started="$SECONDS"
  if ! javac="$(find_javac)"; then
    install_debian_packages "Handler.java needs a JDK" default-jdk-headless >&2
    javac="$(find_javac)" || die "no javac after installing default-jdk-headless"
  fi
  java="$(dirname "$javac")/java"
  [[ -x "$java" ]] || die "no java beside $javac"
  checksum="$(cat "$here/pom.xml" "$here/Handler.java" <("$java" -version 2>&1) | sha256sum | cut -d' ' -f1)"

  mkdir -p "$cache_dir"
  exec 8>"$cache_dir/install.lock"
  flock -w 600 8 || die "another install held $cache_dir/install.lock for 10 minutes"
  if ! [[ -f "$marker" && "$(<"$marker")" == "$checksum" && -f "$cache_dir/classes/example/Handler.class" ]]; then
    command -v mvn >/dev/null 2>&1 ||
      install_debian_packages "the function's jars come through Maven" maven >&2
    log "installing the Java runtime interface client and aws-lambda-java-events from Maven Central into $cache_dir"
    rm -rf "$marker" "$cache_dir/lib" "$cache_dir/classes" "$cache_dir/build"
    mkdir -p "$cache_dir/build/classes"
    # Maven works on a copy of pom.xml in the cache, so that nothing lands in the work tree.
    cp "$here/pom.xml" "$cache_dir/build/pom.xml"
    mvn --batch-mode --quiet -Dstyle.color=never -f "$cache_dir/build/pom.xml" \
      org.apache.maven.plugins:maven-dependency-plugin:2.8:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$cache_dir/build/lib" \
      >"$cache_dir/install.log" 2>&1 || {
      tail -n 30 "$cache_dir/install.log" >&2
      die "Maven could not fetch the function's jars (is Maven Central reachable?); its log is $cache_dir/install.log"
    }
    "$javac" -nowarn --release 11 -encoding UTF-8 -d "$cache_dir/build/classes" \
      -cp "$cache_dir/build/lib/*" "$here/Handler.java" >>"$cache_dir/install.log" 2>&1 || {
      tail -n 30 "$cache_dir/install.log" >&2
      die "$javac could not compile Handler.java; its log is $cache_dir/install.log"
    }
    mv "$cache_dir/build/lib" "$cache_dir/lib"
    mv "$cache_dir/build/classes" "$cache_dir/classes"
    rm -rf "$cache_dir/build"
    printf '%s\n' "$checksum" >"$marker"
    log "installed ($((SECONDS - started))s)"
  fi
  printf '%s\n' "$java -cp $cache_dir/classes:$cache_dir/lib/* $main_class $handler"
}

main "$@"
