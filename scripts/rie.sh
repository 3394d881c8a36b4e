#!/usr/bin/env bash
# AWS's Lambda Runtime Interface Emulator (aws-lambda-rie), built from its Go module
# github.com/aws/aws-lambda-runtime-interface-emulator with `go install`: no Docker, no GitHub
# release download (only the Go module proxy is needed).
#
# Usage: scripts/rie.sh {install|version|path}
#   install  builds cmd/aws-lambda-rie at the pinned version into the cache, once; later calls
#            reuse it. Needs Go (1.26.6 or newer, as the module's go.mod says) on PATH. A cold
#            install downloads its modules (~10 MB) and takes ~1 min on 2 busy cores.
#   version  prints the module version this script pins.
#   path     prints the path of the aws-lambda-rie binary (after `install`).
#
# Running it: `aws-lambda-rie [--runtime-interface-emulator-address HOST:PORT] HANDLER [ARG…]`
# starts HANDLER (a Lambda runtime binary: bootstrap) with AWS_LAMBDA_RUNTIME_API set and serves
# POST /2015-03-31/functions/function/invocations on HOST:PORT (default 0.0.0.0:8080);
# AWS_LAMBDA_FUNCTION_TIMEOUT (seconds, default 300) sets the invoke timeout.
#
# Settings, from the environment:
#   KL_RIE_VERSION  module version of the emulator   (v0.0.0-20261030222936-bef5c4ba774d)
#   KL_CACHE_DIR    where installed tools are kept   (~/.cache/kafka-lambda)
#   GOPROXY         Go's module proxy                (https://proxy.golang.org when unset)
set -euo pipefail

readonly usage="usage: scripts/rie.sh {install|version|path}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly module=github.com/aws/aws-lambda-runtime-interface-emulator
# The repository's tags (v1.x) are not semantic versions Go accepts, so the Go module proxy
# knows its commits by pseudo-version only: this is its latest commit there (2026-10-30).
readonly rie_version="${KL_RIE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}"
readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}"
readonly rie_home="$cache_dir/rie-$rie_version"
readonly rie_bin="$rie_home/aws-lambda-rie"

readonly script_name=rie
# shellcheck source=scripts/lib/common.sh
. "$here/lib/common.sh"

cmd_install() {
  [[ -x "$rie_bin" ]] && return
  command -v go >/dev/null 2>&1 ||
    die "the emulator is built with Go, which is not on PATH: install Go 1.26.6 or newer (https://go.dev/dl/)"
  mkdir -p "$cache_dir"
  # Several callers may install at once: one builds, the others wait and then find it built.
  exec 8>"$cache_dir/rie-install.lock"
  flock -w 600 8 || die "another install held $cache_dir/rie-install.lock for 10 minutes"
  [[ -x "$rie_bin" ]] && return
  local started="$SECONDS" build="$rie_home.build"
  log "building aws-lambda-rie $rie_version with go install into $rie_home"
  rm -rf "$build"
  mkdir -p "$build"
  # GOFLAGS=-mod=mod: a go.work or vendor directory of the caller's must not interfere;
  # CGO_ENABLED=0: a static binary, as AWS ships it, needing no C toolchain.
  (cd "$build" && GOBIN="$build" GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off \
    GOPROXY="${GOPROXY:-https://proxy.golang.org}" \
    go install "$module/cmd/aws-lambda-rie@$rie_version") \
    >"$cache_dir/rie-install.log" 2>&1 || {
    tail -n 30 "$cache_dir/rie-install.log" >&2
    die "go install of aws-lambda-rie $rie_version failed (is the Go module proxy reachable?); its log is $cache_dir/rie-install.log"
  }
  [[ -x "$build/aws-lambda-rie" ]] || die "aws-lambda-rie is missing after go install"
  # The binary appears under $rie_home whole or not at all.
  rm -rf "$rie_home"
  mv "$build" "$rie_home"
  log "aws-lambda-rie $rie_version is installed ($((SECONDS - started))s)"
}

main() {
  case "${1:-}" in
    install) cmd_install ;;
    version) printf '%s\n' "$rie_version" ;;
    path)
      [[ -x "$rie_bin" ]] || die "aws-lambda-rie $rie_version is not installed: run scripts/rie.sh install"
      printf '%s\n' "$rie_bin"
      ;;
    *) die "$usage" ;;
  esac
}

main "$@"
