#!/usr/bin/env bash
# Runs check_response.py (see its docstring) against Powertools for AWS Lambda (Python) 3.37.0's
# own model of a Kafka partial batch response, in a venv kept in the cache
# (${KL_CACHE_DIR:-~/.cache/kafka-lambda}/conformance/powertools-models/), made once with the
# first Python 3.12+ found (pydantic reads Powertools' TypedDicts on 3.12+ only).
#
# Usage: tests/conformance/powertools-models/run.sh [response.json]
# Exits with check_response.py's status; non-zero naming the problem when it cannot install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
readonly powertools_version=3.37.0
readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}/conformance/powertools-models"
readonly venv="$cache_dir/venv-py312-powertools-$powertools_version"

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import aws_lambda_powertools, pydantic' 2>/dev/null; then
  python=""
  for candidate in python3.13 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
  if [[ -z "$python" ]]; then
    echo "run.sh: no Python 3.12 or newer on PATH (pydantic reads Powertools' TypedDicts on 3.12+ only)" >&2
    exit 1
  fi
  mkdir -p "$cache_dir"
  rm -rf "$venv.build"
  "$python" -m venv "$venv.build" >&2
  "$venv.build/bin/pip" install --quiet "aws-lambda-powertools[parser]==$powertools_version" >&2 ||
    { echo "run.sh: pip could not install aws-lambda-powertools[parser]==$powertools_version" >&2; exit 1; }
  rm -rf "$venv"
  mv "$venv.build" "$venv"
fi
exec "$venv/bin/python" "$here/check_response.py" "${1:-$repo/events/fixtures/aws/our-partial-response.json}"
