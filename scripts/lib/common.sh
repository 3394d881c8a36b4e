# shellcheck shell=bash
# What the scripts under scripts/ share: messages, running as root, Debian packages. Sourced,
# never run; the sourcing script sets `script_name` first, which prefixes its messages.

# Prints a message on stderr; a closed stderr is not an error.
# shellcheck disable=SC2154 # set by the sourcing script
log() { printf '%s: %s\n' "$script_name" "$*" >&2 || true; }

# Prints an error on stderr and exits with 1.
die() {
  printf '%s: error: %s\n' "$script_name" "$*" >&2 || true
  exit 1
}

# Runs a command as root: directly when root already, else through sudo when it needs no
# password; fails without running it otherwise.
run_as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

# Installs Debian packages, as root, or dies naming the packages and how to install them:
# `install_debian_packages WHY PACKAGE…`, WHY saying what needs them (for machines without apt).
install_debian_packages() {
  local why="$1"
  shift
  command -v apt-get >/dev/null 2>&1 ||
    die "missing: $* ($why); install them with your package manager"
  run_as_root true ||
    die "missing Debian packages: $*. Install them with: sudo apt-get install $*"
  log "installing Debian packages: $*"
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@"
}
