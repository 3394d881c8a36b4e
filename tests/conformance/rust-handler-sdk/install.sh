#!/usr/bin/env bash
# Builds this folder's Rust conformance function and prints its binary's path as the last line
# (tests/conformance/cargo-install.sh, shared by the Rust functions).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../cargo-install.sh" "$(basename "$here")"
