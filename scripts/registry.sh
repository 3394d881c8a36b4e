#!/usr/bin/env bash
# Two real schema registries for kafka-lambda's schema-registry tests, plus the Python tooling
# that produces records against them:
#   - Apicurio Registry 3.3.3 (Maven Central's io.apicurio:apicurio-registry-app:tar.gz:all, a
#     Quarkus app run with `java -jar quarkus-run.jar`), for its Confluent-compatible API at
#     /apis/ccompat/v7. Storage is its default in-memory H2 database: every start is empty.
#   - moto's server (moto 5.2.5, Python), for the AWS Glue Schema Registry API. In memory too.
#   - a venv with confluent-kafka's own serializers (AvroSerializer, ProtobufSerializer,
#     JSONSerializer), fastavro, boto3 and protoc (grpcio-tools), which
#     scripts/registry/produce.py uses to produce Confluent-framed records, and AWS's own Glue
#     serializer (Java, scripts/registry/glue-serde), which it runs for Glue-framed ones.
#
# Usage: scripts/registry.sh {install|start|stop|status|env}
#   install  Maven (Debian's package) and python3-venv when missing, then Apicurio Registry into
#            the cache and the venv (scripts/registry/requirements.txt), once; later calls reuse
#            them (the venv is made anew when requirements.txt changes). A cold install
#            downloads ~160 MB (Apicurio's tarball) and ~60 MB of wheels (the venv: 210 MB) and
#            took 42 s here, pip's cache off: 6 s for Apicurio, 36 s for the venv. Then AWS's
#            Glue serializer (Java, scripts/registry/glue-serde: ~40 MB of jars, 25 s) with
#            GlueSerialize.java compiled against it (a JDK's javac; default-jdk-headless when
#            none), into the cache's glue-serde folder: the class path is resolved and the source
#            compiled once, again only when pom.xml or GlueSerialize.java changes.
#   start    installs what is missing, starts both registries in the background, or reuses them
#            when they already run, and returns once each one answers (Apicurio ~5 s, moto ~1 s).
#            Pid files and logs: .services/registry/{apicurio,moto}.{pid,log}.
#   stop     stops both with every process they started, then checks that none is left.
#   status   tells whether each registry runs and answers; exits 0 only when both do.
#   env      prints the `export` line for KL_SCHEMA_REGISTRY_URL (the ccompat base URL),
#            KL_GLUE_ENDPOINT, KL_REGISTRY_PYTHON (the venv's python, for produce.py),
#            KL_GLUE_SERDE_HOME (AWS's Glue serializer) and KL_REGISTRY_JAVA (which runs it).
#
# Settings, from the environment:
#   KL_REGISTRY_PORT       Apicurio's HTTP port on 127.0.0.1                       (18081)
#   KL_REGISTRY_MANAGEMENT_PORT  Apicurio's management port (health, metrics)       (KL_REGISTRY_PORT+2)
#   KL_GLUE_PORT           moto's port on 127.0.0.1                                (18082)
#   KL_REGISTRY_JAVA       the java that runs Apicurio (21 or newer)  (see below)
#   KL_REGISTRY_HEAP       Apicurio's heap settings                   (-Xms64m -Xmx512m)
#   KL_REGISTRY_JAVA_OPTS  more JVM options for Apicurio, e.g. -Dapicurio.ccompat.legacy-id-mode.enabled=true
#   KL_CACHE_DIR           where Apicurio and the venv are kept       (~/.cache/kafka-lambda)
#   KL_SERVICES_DIR        parent of the pid files and logs           (<repo>/.services)
#
# Apicurio Registry 3.3.3, checked by running it here:
# - Java: its classes are Java 21 bytecode (class file 65); Java 17 fails at start with
#   UnsupportedClassVersionError. The java used is KL_REGISTRY_JAVA, else `java` on PATH when it
#   is 21 or newer, else the newest JDK 21+ under /usr/lib/jvm (Temurin 25 on these machines).
# - Its management interface (health, metrics) has its own port, 9000 by default: the Lambda
#   emulator's. It is moved to KL_REGISTRY_MANAGEMENT_PORT; both listen on 127.0.0.1 only.
# - The ids of the ccompat API are content ids, as in Confluent's registry: registering the
#   same schema under two subjects returns the same id, and GET /schemas/ids/{id} resolves it.
#   That id is what Confluent serializers embed after the magic byte. Apicurio's own global ids
#   (one per artifact version, /apis/registry/v3/ids/globalIds/{id}) are another sequence that
#   often coincides in a fresh registry: a test tells them apart only with the same schema under
#   two subjects. -Dapicurio.ccompat.legacy-id-mode.enabled=true (KL_REGISTRY_JAVA_OPTS) makes
#   ccompat hand out global ids instead.
# - schemaType PROTOBUF and JSON work (GET /schemas/types: ["JSON","PROTOBUF","AVRO"]);
#   GET /schemas/ids/{id} returns "schemaType" for them and leaves it out for Avro, as Confluent
#   does. References work for Avro (a named type from another subject) and Protobuf (an import
#   of another subject's .proto): register keeps them, GET /schemas/ids/{id} and
#   GET /subjects/{s}/versions/{v} return "references":[{"name","subject","version"}].
# - Apicurio keeps a schema's text as registered and serves it back unchanged. confluent-kafka's
#   Python ProtobufSerializer registers a base64 serialized FileDescriptorProto, not .proto
#   text, so that is what GET /schemas/ids/{id} then returns (schemaType PROTOBUF): a reader must
#   take both forms. That serializer registers each imported file as a reference (subject =
#   file name) but not google/protobuf/*.proto, which the descriptor still imports.
#   GET /schemas/ids/{id}?format=serialized answers 400.
# - Apicurio checks the schema text against schemaType by sniffing it: a JSON Schema is
#   recognised only with "$schema" or "properties" ({"type":"object"} alone, or with only
#   "required" or "$id", answers 422 "Failed to discover artifact type from content").
# - A subject is an artifact whose type is fixed by its first version: a Protobuf schema
#   registered under a subject that began with Avro is accepted, but is then served without
#   "schemaType" (as Avro), and so is the same content under any other subject. Tests keep one
#   format per subject (a topic per format).
# - The default compatibility is NONE (Confluent's is BACKWARD).
#
# moto 5.2.5's Glue Schema Registry, checked with boto3 and raw JSON requests: CreateRegistry,
# GetRegistry, DeleteRegistry, CreateSchema (AVRO, JSON, PROTOBUF; without RegistryId it uses
# "default-registry"), GetSchema, RegisterSchemaVersion (the same definition again returns the
# same SchemaVersionId), GetSchemaVersion (by SchemaVersionId, by SchemaId with VersionNumber or
# LatestVersion; an unknown id is EntityNotFoundException), GetSchemaByDefinition,
# PutSchemaVersionMetadata and DeleteSchema work. ListSchemaVersions and DeleteSchemaVersions
# are not implemented (HTTP 500). Compatibility modes are stored, not enforced. It keeps at
# most 10 registries for as long as it runs (MAX_REGISTRIES_ALLOWED): CreateRegistry then answers
# ResourceNumberLimitExceededException, even for a name that exists (the limit is checked
# first). AWS's Java serializer (GetSchemaByDefinition, CreateSchema, RegisterSchemaVersion,
# GetSchemaVersion) works against it for Avro, JSON Schema and Protobuf alike. moto routes a
# request by the credential scope of its Authorization header: any SigV4 signature with service
# `glue` is accepted (not verified); without the header a request reaches moto's S3 instead.
# Its `glue` extra needs only pyparsing; its server needs Flask and flask-cors, not the heavy
# `server` extra.
set -euo pipefail

readonly usage="usage: scripts/registry.sh {install|start|stop|status|env}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
repo="$(cd "$here/.." && pwd)"
readonly repo
readonly apicurio_version=3.3.3
readonly port="${KL_REGISTRY_PORT:-18081}"
readonly management_port="${KL_REGISTRY_MANAGEMENT_PORT:-$((port + 2))}"
readonly glue_port="${KL_GLUE_PORT:-18082}"
readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}"
readonly apicurio_home="$cache_dir/apicurio-registry-$apicurio_version"
readonly venv="$cache_dir/registry-venv"
readonly glue_serde_src="$here/registry/glue-serde"
readonly glue_serde_home="$cache_dir/glue-serde"
readonly requirements="$here/registry/requirements.txt"
readonly state_dir="${KL_SERVICES_DIR:-$repo/.services}/registry"
readonly registry_url="http://127.0.0.1:$port/apis/ccompat/v7"
readonly glue_endpoint="http://127.0.0.1:$glue_port"

readonly script_name=registry
# shellcheck source=scripts/lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=scripts/lib/processes.sh
. "$here/lib/processes.sh"

# ---------------------------------------------------------------------------------------------
# install

# The major version of the given java (21 for "21.0.5"), or nothing.
java_major() {
  "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

# Prints the java that runs Apicurio: it needs 21 or newer.
find_java() {
  local candidate major
  if [[ -n "${KL_REGISTRY_JAVA:-}" ]]; then
    major="$(java_major "$KL_REGISTRY_JAVA" 2>/dev/null || true)"
    if [[ -z "$major" ]] || ((major < 21)); then
      die "KL_REGISTRY_JAVA=$KL_REGISTRY_JAVA is not Java 21 or newer"
    fi
    printf '%s\n' "$KL_REGISTRY_JAVA"
    return
  fi
  if command -v java >/dev/null 2>&1; then
    major="$(java_major java 2>/dev/null || true)"
    if [[ -n "$major" ]] && ((major >= 21)); then
      command -v java
      return
    fi
  fi
  # The newest JDK under /usr/lib/jvm first: Temurin 25 is there on these machines.
  while IFS= read -r candidate; do
    [[ -x "$candidate" ]] || continue
    major="$(java_major "$candidate" 2>/dev/null || true)"
    if [[ -n "$major" ]] && ((major >= 21)); then
      printf '%s\n' "$candidate"
      return
    fi
  done < <(printf '%s\n' /usr/lib/jvm/*/bin/java | sort -V -r)
  return 1
}

install_apicurio() {
  local marker="$apicurio_home/.complete"
  [[ -f "$marker" ]] && return
  command -v mvn >/dev/null 2>&1 || install_debian_packages "Apicurio Registry's install needs Maven" maven
  local started="$SECONDS" download="$apicurio_home.download"
  local archive="$download/apicurio-registry-app-$apicurio_version-all.tar.gz"
  log "installing Apicurio Registry $apicurio_version from Maven Central into $apicurio_home"
  rm -rf "$download"
  mkdir -p "$download/app"
  # maven-dependency-plugin 2.8 is the one scripts/kafka.sh's install already fetched.
  mvn --batch-mode --quiet -Dstyle.color=never \
    org.apache.maven.plugins:maven-dependency-plugin:2.8:copy \
    -Dartifact="io.apicurio:apicurio-registry-app:$apicurio_version:tar.gz:all" \
    -DoutputDirectory="$download" >"$cache_dir/registry-install.log" 2>&1 || {
    tail -n 30 "$cache_dir/registry-install.log" >&2
    die "Maven could not fetch Apicurio Registry $apicurio_version (is Maven Central reachable?); its log is $cache_dir/registry-install.log"
  }
  tar -xzf "$archive" -C "$download/app" || die "could not unpack $archive"
  [[ -f "$download/app/quarkus-run.jar" ]] || die "quarkus-run.jar is missing from $archive"
  rm -rf "$apicurio_home"
  mv "$download/app" "$apicurio_home"
  rm -rf "$download"
  touch "$marker"
  log "Apicurio Registry $apicurio_version is installed ($((SECONDS - started))s)"
}

# A javac for GlueSerialize.java: on PATH, or the newest under /usr/lib/jvm.
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

# AWS's own Glue Schema Registry serializer (software.amazon.glue:schema-registry-serde, from
# Maven Central) and GlueSerialize.java compiled against it, in $glue_serde_home: what
# produce.py writes every Glue record with, Avro, JSON Schema and Protobuf (no Python
# serializer writes Glue's framing). Current when its marker holds the checksum of the pom and
# the source: then nothing is resolved or compiled again.
install_glue_serde() {
  local checksum marker="$glue_serde_home/.complete" javac started="$SECONDS"
  checksum="$(cat "$glue_serde_src/pom.xml" "$glue_serde_src/GlueSerialize.java" | sha256sum | cut -d' ' -f1)"
  [[ -f "$marker" && "$(<"$marker")" == "$checksum" ]] && return
  # What the Protobuf-only version of this install left (GlueProtobuf.java's classes).
  rm -rf "$cache_dir/glue-protobuf" "$cache_dir/glue-protobuf-install.log"
  command -v mvn >/dev/null 2>&1 || install_debian_packages "AWS's Glue serializer comes through Maven" maven
  if ! javac="$(find_javac)"; then
    install_debian_packages "GlueSerialize.java needs a JDK" default-jdk-headless
    javac="$(find_javac)" || die "no javac after installing default-jdk-headless"
  fi
  log "installing AWS's Glue Schema Registry serializer from Maven Central into $glue_serde_home"
  rm -rf "$glue_serde_home"
  mkdir -p "$glue_serde_home/classes"
  mvn --batch-mode --quiet -Dstyle.color=never -f "$glue_serde_src/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:2.8:build-classpath \
    -Dmdep.outputFile="$glue_serde_home/classpath" >"$cache_dir/glue-serde-install.log" 2>&1 || {
    tail -n 30 "$cache_dir/glue-serde-install.log" >&2
    die "Maven could not fetch AWS's Glue serializer (is Maven Central reachable?); its log is $cache_dir/glue-serde-install.log"
  }
  "$javac" -nowarn -d "$glue_serde_home/classes" -cp "$(<"$glue_serde_home/classpath")" \
    "$glue_serde_src/GlueSerialize.java" || die "$javac could not compile GlueSerialize.java"
  printf '%s\n' "$checksum" >"$marker"
  log "AWS's Glue serializer is installed ($((SECONDS - started))s)"
}

# The venv is current when its marker holds the checksum of requirements.txt and its python
# still runs (a venv dies with the interpreter it was made from).
venv_current() {
  [[ -f "$venv/.complete" ]] &&
    [[ "$(<"$venv/.complete")" == "$(sha256sum "$requirements" | cut -d' ' -f1)" ]] &&
    "$venv/bin/python" -c 'import moto, confluent_kafka, grpc_tools, fastavro' 2>/dev/null
}

install_venv() {
  venv_current && return
  command -v python3 >/dev/null 2>&1 || install_debian_packages "the registries' Python tools" python3
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "python3 is older than 3.10 (moto 5 needs 3.10 or newer)"
  # Debian's python3 lacks venv and ensurepip until python3-venv is installed.
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    install_debian_packages "the registries' Python tools need a venv" python3-venv
    python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 still cannot make a venv"
  fi
  local started="$SECONDS" checksum
  checksum="$(sha256sum "$requirements" | cut -d' ' -f1)"
  log "making the registry venv in $venv (moto, confluent-kafka, grpcio-tools)"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
    >"$cache_dir/registry-venv.log" 2>&1 || {
    tail -n 30 "$cache_dir/registry-venv.log" >&2
    die "pip could not install $requirements (is PyPI reachable?); its log is $cache_dir/registry-venv.log"
  }
  printf '%s\n' "$checksum" >"$venv/.complete"
  venv_current || die "the venv in $venv does not import moto and confluent_kafka after pip install"
  log "the registry venv is ready ($((SECONDS - started))s)"
}

cmd_install() {
  mkdir -p "$cache_dir"
  # Parallel callers: one installs, the others wait and then find it complete.
  exec 7>"$cache_dir/registry-install.lock"
  flock -w 600 7 || die "another install held $cache_dir/registry-install.lock for 10 minutes"
  if ! find_java >/dev/null 2>&1 && command -v apt-cache >/dev/null 2>&1 &&
    apt-cache show openjdk-21-jre-headless >/dev/null 2>&1; then
    # Debian 13 and Ubuntu 24.04 have Java 21; it installs beside the broker's Java 17.
    install_debian_packages "Apicurio Registry needs Java 21 or newer" openjdk-21-jre-headless
  fi
  find_java >/dev/null ||
    die "Apicurio Registry needs Java 21 or newer: none found on PATH or under /usr/lib/jvm, and no openjdk-21-jre-headless package; install a JDK 21+ (e.g. Temurin) or set KL_REGISTRY_JAVA"
  install_apicurio
  install_venv
  install_glue_serde
  exec 7>&-
}

# ---------------------------------------------------------------------------------------------
# the registries

apicurio_ready() {
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$registry_url/subjects")" == 200 ]]
}

# A Glue call, not just an open port: moto picks the service by the Authorization header's
# credential scope (see above), so the probe sends an unsigned one for `glue`.
moto_ready() {
  curl -s --max-time 2 -X POST "$glue_endpoint/" \
    -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: AWSGlue.ListRegistries' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=probe/20250101/us-east-1/glue/aws4_request, SignedHeaders=host, Signature=0' \
    -d '{}' 2>/dev/null | grep -q '"Registries"'
}

# Prints "reuse" when the service runs and answers, else stops what is left of it and checks
# that its ports are free.
check_service() {
  local name="$1" program="$2" probe="$3" pid
  shift 3
  if pid="$(service_pid "$name" "$program")"; then
    if "$probe"; then
      echo reuse
      return
    fi
    log "$name (pid $pid) does not answer: restarting it"
    stop_service "$name"
  fi
  local p
  for p in "$@"; do
    port_in_use "$p" &&
      die "port $p is taken by a process this script did not start; free it or set KL_REGISTRY_PORT, KL_REGISTRY_MANAGEMENT_PORT or KL_GLUE_PORT"
  done
  echo start
}

with_lock() {
  mkdir -p "$state_dir"
  exec 8>"$state_dir.lock"
  flock -w 300 8 || die "another registry.sh held $state_dir.lock for 5 minutes"
}

cmd_start() {
  cmd_install
  with_lock
  local java started="$SECONDS" apicurio moto
  java="$(find_java)"
  apicurio="$(check_service apicurio quarkus-run.jar apicurio_ready "$port" "$management_port")"
  moto="$(check_service moto moto_server moto_ready "$glue_port")"
  if [[ "$apicurio" == start ]]; then
    # shellcheck disable=SC2086 # the heap settings and options are several words
    spawn apicurio "$apicurio_home" "$java" ${KL_REGISTRY_HEAP:--Xms64m -Xmx512m} \
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
      -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$management_port" \
      ${KL_REGISTRY_JAVA_OPTS:-} -jar quarkus-run.jar
  else
    log "Apicurio Registry is already running at $registry_url"
  fi
  if [[ "$moto" == start ]]; then
    spawn moto "$state_dir" "$venv/bin/moto_server" -H 127.0.0.1 -p "$glue_port"
  else
    log "moto (Glue) is already running at $glue_endpoint"
  fi
  # Both start at once; then each is awaited.
  if [[ "$apicurio" == start ]]; then
    wait_ready apicurio quarkus-run.jar 120 apicurio_ready
    log "Apicurio Registry $apicurio_version is ready at $registry_url ($((SECONDS - started))s, $java)"
  fi
  if [[ "$moto" == start ]]; then
    wait_ready moto moto_server 60 moto_ready
    log "moto (Glue Schema Registry) is ready at $glue_endpoint ($((SECONDS - started))s)"
  fi
}

cmd_stop() {
  [[ -d "$state_dir" ]] || return 0
  with_lock
  stop_service apicurio
  stop_service moto
  local p
  for p in "$port" "$management_port" "$glue_port"; do
    if port_in_use "$p"; then
      log "warning: port $p still answers; it belongs to a process this script did not start"
    fi
  done
}

# One line for a service; fails when it does not run or does not answer.
service_status() {
  local name="$1" label="$2" program="$3" probe="$4" address="$5" pid
  if ! pid="$(service_pid "$name" "$program")"; then
    echo "$label: not running"
    return 1
  fi
  if "$probe"; then
    echo "$label: running (pid $pid), answers at $address"
  else
    echo "$label: running (pid $pid), does not answer at $address"
    return 1
  fi
}

cmd_status() {
  local healthy=0
  service_status apicurio "apicurio registry" quarkus-run.jar apicurio_ready "$registry_url" || healthy=1
  service_status moto "moto (glue)" moto_server moto_ready "$glue_endpoint" || healthy=1
  return "$healthy"
}

main() {
  case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env)
      echo "export KL_SCHEMA_REGISTRY_URL=$registry_url KL_GLUE_ENDPOINT=$glue_endpoint" \
        "KL_REGISTRY_PYTHON=$venv/bin/python KL_GLUE_SERDE_HOME=$glue_serde_home" \
        "KL_REGISTRY_JAVA=$(find_java || echo java)"
      ;;
    *) die "$usage" ;;
  esac
}

main "$@"
