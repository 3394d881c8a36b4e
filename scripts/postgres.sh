#!/usr/bin/env bash
# A private PostgreSQL server for kafka-lambda's tests and demo (the pg-sink example writes to
# it): its own cluster under .services/postgres, listening on a loopback port only, started and
# stopped with pg_ctl. Nothing of the system's own PostgreSQL service is used or touched.
#
# Usage: scripts/postgres.sh {install|start|stop|status|env}
#   install  Debian's `postgresql` package, when the server programs are missing.
#   start    installs what is missing, creates the cluster on first use (initdb, then the
#            database `kafka_lambda`), starts it, or reuses it when it already runs, and returns
#            once it accepts connections. Idempotent; parallel callers wait for each other.
#   stop     a fast shutdown (pg_ctl -m fast: sessions are ended, the data stays consistent);
#            the cluster's files are kept for the next start.
#   status   tells whether the server runs and answers; exits 0 only when it does.
#   env      prints the `export` line for KL_PG_URL, the connection URL the tests read.
#
# Settings, from the environment:
#   KL_PG_PORT         port on 127.0.0.1                                   (15432)
#   KL_PG_DIR          cluster directory (data/, log, socket, lock)         (<repo>/.services/postgres)
#   KL_SERVICES_DIR    parent of the default KL_PG_DIR                     (<repo>/.services)
#
# The cluster trusts every connection: it listens on 127.0.0.1 only and holds test data only.
# PostgreSQL refuses to run as root: run as root (as in CI), the server runs as the `postgres`
# user that Debian's package creates, and the cluster directory belongs to it. Several
# clusters can run side by side with different KL_PG_PORT and KL_PG_DIR (the pg-sink tests
# start a second one to take it down).
set -euo pipefail

readonly usage="usage: scripts/postgres.sh {install|start|stop|status|env}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly port="${KL_PG_PORT:-15432}"
readonly pg_dir="${KL_PG_DIR:-${KL_SERVICES_DIR:-$repo/.services}/postgres}"
readonly data_dir="$pg_dir/data"
readonly log_file="$pg_dir/postgres.log"
readonly database=kafka_lambda
readonly superuser=postgres
readonly url="postgres://$superuser@127.0.0.1:$port/$database"

readonly script_name=postgres
# shellcheck source=scripts/lib/common.sh
. "$repo/scripts/lib/common.sh"

# The server programs (initdb, pg_ctl, pg_isready, psql): Debian keeps them out of PATH, under
# /usr/lib/postgresql/<major>/bin; the newest major installed wins.
find_bindir() {
  local dir="" dirs
  dirs=(/usr/lib/postgresql/*/bin)
  if [[ -d "${dirs[0]}" ]]; then
    dir="$(printf '%s\n' "${dirs[@]}" | sort -V | tail -n 1)"
  fi
  if [[ -n "$dir" && -x "$dir/pg_ctl" && -x "$dir/initdb" ]]; then
    printf '%s\n' "$dir"
  elif command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  else
    return 1
  fi
}

cmd_install() {
  if find_bindir >/dev/null; then
    return
  fi
  # The package's own cluster (main, port 5432) is not used; policy-rc.d or the absence of an
  # init system may keep it from starting, which is fine.
  install_debian_packages "PostgreSQL's server programs initdb and pg_ctl" postgresql
  find_bindir >/dev/null || die "initdb and pg_ctl are still missing after installing postgresql"
}

# Runs a server program as the cluster's owner: the `postgres` user when this script runs as
# root, the caller otherwise.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    id -u "$superuser" >/dev/null 2>&1 ||
      die "running as root needs the \`$superuser\` user (Debian's postgresql package creates it)"
    runuser -u "$superuser" -- "$@"
  else
    "$@"
  fi
}

ready() {
  "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -d "$database" -U "$superuser" -t 2
}

running() {
  as_owner "$bindir/pg_ctl" status -D "$data_dir" >/dev/null 2>&1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

with_lock() {
  mkdir -p "$pg_dir"
  exec 8>"$pg_dir.lock"
  flock -w 300 8 || die "another postgres.sh held $pg_dir.lock for 5 minutes"
}

init_cluster() {
  [[ -f "$data_dir/PG_VERSION" ]] && return
  log "creating the cluster in $data_dir"
  rm -rf "$data_dir"
  if [[ "$(id -u)" == 0 ]]; then
    chown "$superuser:" "$pg_dir"
  fi
  # No fsync: test data is thrown away, and a cluster that survives a crash is not needed.
  as_owner "$bindir/initdb" -D "$data_dir" -U "$superuser" --auth=trust --encoding=UTF8 \
    --locale=C --no-sync >"$pg_dir/initdb.log" 2>&1 ||
    die "initdb failed; see $pg_dir/initdb.log"
}

cmd_start() {
  cmd_install
  bindir="$(find_bindir)"
  with_lock
  if running; then
    if ready; then
      log "PostgreSQL is already running on 127.0.0.1:$port ($data_dir)"
      return
    fi
    log "PostgreSQL runs but does not answer on 127.0.0.1:$port: restarting it"
    as_owner "$bindir/pg_ctl" stop -D "$data_dir" -m fast -w -t 30 >/dev/null || true
  fi
  port_in_use "$port" &&
    die "port $port is taken by a process this script did not start; free it or set KL_PG_PORT"
  init_cluster
  local started="$SECONDS"
  # The socket goes into the cluster directory: /var/run/postgresql may not exist or not be
  # writable, and a private directory keeps two clusters apart. The server must not inherit
  # this script's lock (fd 8) nor services.sh's (fd 9): it would hold them as long as it runs.
  as_owner "$bindir/pg_ctl" start -D "$data_dir" -l "$log_file" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$pg_dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >/dev/null 8>&- 9>&- || {
    tail -n 30 "$log_file" >&2 || true
    die "PostgreSQL did not start; its log is $log_file"
  }
  local waited=0
  until ready; do
    ((waited++ < 100)) || die "PostgreSQL does not answer on 127.0.0.1:$port; its log is $log_file"
    sleep 0.1
  done
  if [[ "$(as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$superuser" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]]; then
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$superuser" "$database"
  fi
  log "PostgreSQL is ready at $url ($((SECONDS - started))s)"
}

cmd_stop() {
  bindir="$(find_bindir)" || return 0
  [[ -f "$data_dir/PG_VERSION" ]] || return 0
  with_lock
  if running; then
    log "stopping PostgreSQL on 127.0.0.1:$port"
    as_owner "$bindir/pg_ctl" stop -D "$data_dir" -m fast -w -t 60 >/dev/null ||
      die "PostgreSQL did not stop; its log is $log_file"
  fi
}

cmd_status() {
  bindir="$(find_bindir)" || {
    echo "postgres: not installed"
    return 1
  }
  if ! running; then
    echo "postgres: not running"
    return 1
  fi
  if ready; then
    echo "postgres: running, answers at $url"
  else
    echo "postgres: running, does not answer on 127.0.0.1:$port"
    return 1
  fi
}

main() {
  case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export KL_PG_URL=$url" ;;
    *) die "$usage" ;;
  esac
}

main "$@"
