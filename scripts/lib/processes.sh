# shellcheck shell=bash disable=SC2154 # state_dir: set by the sourcing script
# Background services that outlive the script that starts them: each runs in a session of its
# own, with its pid in $state_dir/NAME.pid and its output in $state_dir/NAME.log. Sourced, after
# scripts/lib/common.sh, by scripts that set `state_dir`.

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

# Starts a command in a new session, detached from the caller, and records its pid. The
# service inherits none of the scripts' lock descriptors (7 and 8: registry.sh, 9: services.sh).
spawn() {
  local name="$1" workdir="$2"
  shift 2
  : >"$state_dir/$name.log"
  (
    cd "$workdir" || exit 1
    # The inner shell writes its own pid, then execs the service: pid == session id == pgid.
    # shellcheck disable=SC2016
    setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' _ "$state_dir/$name.pid" "$@" \
      </dev/null >>"$state_dir/$name.log" 2>&1 7>&- 8>&- 9>&- &
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
  local name="$1" program="$2" timeout="$3" probe="$4" started="$SECONDS" session
  session="$(cat "$state_dir/$name.pid" 2>/dev/null)"
  until "$probe"; do
    # Dead only when its session is empty too: while the recorded shell execs the service, its
    # command line can read as empty for a moment.
    if ! service_pid "$name" "$program" >/dev/null && [[ -z "$(session_pids "$session")" ]]; then
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
