#!/usr/bin/env bash
# Installs the python-powertools conformance function: a Python 3.11 venv with the pinned
# requirements.txt (awslambdaric, aws-lambda-powertools), under
# ${KL_CACHE_DIR:-~/.cache/kafka-lambda}/conformance/python-powertools/, once; later runs reuse it.
# The venv's path carries a hash of requirements.txt, so a changed pin installs a new venv.
# Prints, as its last line of stdout, the command aws-lambda-rie runs (from this folder).
# Settings: KL_CACHE_DIR, KL_PYTHON (the interpreter, default python3.11), PIP_INDEX_URL.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly name=python-powertools
readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}/conformance/$name"
log() { printf '%s: %s\n' "$name/install.sh" "$*" >&2 || true; }
die() {
  printf '%s: error: %s\n' "$name/install.sh" "$*" >&2 || true
  exit 1
}

python="${KL_PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || die "$python is not on PATH: install Python 3.11"
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null ||
  die "$python is not Python 3.11 (it is $("$python" --version 2>&1))"

hash="$(sha256sum "$here/requirements.txt" | cut -c1-12)"
readonly venv="$cache_dir/venv-$hash"
readonly command_line="$venv/bin/python -m awslambdaric app.handler"

if [[ ! -f "$venv/.installed" ]]; then
  mkdir -p "$cache_dir"
  # Several callers may install at once: one installs, the others wait and then reuse it.
  exec 8>"$cache_dir/install.lock"
  flock -w 600 8 || die "another install held $cache_dir/install.lock for 10 minutes"
  if [[ ! -f "$venv/.installed" ]]; then
    started="$SECONDS"
    log "installing $(grep -v '^#' "$here/requirements.txt" | xargs) into $venv"
    rm -rf "$venv"
    {
      "$python" -m venv "$venv" &&
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input \
          --only-binary=:all: -r "$here/requirements.txt"
    } >"$cache_dir/install.log" 2>&1 || {
      tail -n 30 "$cache_dir/install.log" >&2
      die "pip install of $here/requirements.txt failed (is PyPI reachable?); its log is $cache_dir/install.log"
    }
    "$venv/bin/python" -c 'import awslambdaric, aws_lambda_powertools.utilities.kafka' ||
      die "the venv $venv cannot import awslambdaric and aws_lambda_powertools.utilities.kafka"
    touch "$venv/.installed"
    log "installed ($((SECONDS - started))s)"
  fi
fi
printf '%s\n' "$command_line"
