#!/usr/bin/env bash
# Builds the go conformance function (main.go, with aws-lambda-go pinned in go.mod/go.sum) with
# `go build` into ${KL_CACHE_DIR:-~/.cache/kafka-lambda}/conformance/go/, once; later runs reuse
# the binary. Its path carries a hash of main.go, go.mod and go.sum, so a change rebuilds it.
# Prints, as its last line of stdout, the command aws-lambda-rie runs (the binary: it takes no
# arguments). Needs Go 1.26 or newer on PATH and the Go module proxy (GOPROXY) on a cold cache.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly name=go
readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}/conformance/$name"
log() { printf '%s: %s\n' "$name/install.sh" "$*" >&2 || true; }
die() {
  printf '%s: error: %s\n' "$name/install.sh" "$*" >&2 || true
  exit 1
}

hash="$(cd "$here" && cat main.go go.mod go.sum | sha256sum | cut -c1-12)"
readonly bin="$cache_dir/build-$hash/bootstrap"

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not on PATH: install Go 1.26 or newer (https://go.dev/dl/)"
  mkdir -p "$cache_dir"
  # Several callers may install at once: one builds, the others wait and then reuse it.
  exec 8>"$cache_dir/install.lock"
  flock -w 600 8 || die "another install held $cache_dir/install.lock for 10 minutes"
  if [[ ! -x "$bin" ]]; then
    started="$SECONDS"
    log "building $here with go build into $(dirname "$bin")"
    tmp="$cache_dir/build-$hash.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # GOFLAGS=-mod=mod and GOWORK=off: go.mod and go.sum here decide, not a caller's go.work or
    # vendor directory; CGO_ENABLED=0: a static binary, needing no C toolchain.
    (cd "$here" && GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 \
      GOPROXY="${GOPROXY:-https://proxy.golang.org}" \
      go build -trimpath -o "$tmp/bootstrap" .) >"$cache_dir/install.log" 2>&1 || {
      tail -n 30 "$cache_dir/install.log" >&2
      die "go build of $here failed (is the Go module proxy reachable?); its log is $cache_dir/install.log"
    }
    [[ -x "$tmp/bootstrap" ]] || die "the binary is missing after go build"
    # The binary appears under its final path whole or not at all.
    rm -rf "$(dirname "$bin")"
    mv "$tmp" "$(dirname "$bin")"
    log "built ($((SECONDS - started))s)"
  fi
fi
printf '%s\n' "$bin"
