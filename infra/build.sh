#!/usr/bin/env bash
# Builds every function of template.yaml the way Lambda runs it (provided.al2023, arm64), without
# Docker, then checks that each one came out as an aarch64 Linux executable named bootstrap:
#
#   infra/build.sh                `sam build` (the AWS SAM CLI, installed from PyPI into the
#                                 virtualenv of infra/lint.sh); artifacts and the built template
#                                 in target/sam/build, ready for `sam deploy --template-file
#                                 target/sam/build/template.yaml`
#   infra/build.sh cargo-lambda   `cargo lambda build --release --arm64` for each function's
#                                 binary, without the SAM CLI; artifacts in
#                                 target/lambda/<binary>/bootstrap
#
# Both cross-compile with cargo-lambda, which links with Zig (the ziglang wheel that comes with
# cargo-lambda's PyPI package) against glibc 2.26, and both need Rust's standard library for
# aarch64-unknown-linux-gnu, which this script adds with rustup when it is missing.
#
# The functions that link OpenSSL (topic-dump, kafka-client-fn through rdkafka; pg-sink) build
# it from source for aarch64 (the `vendored` feature their Cargo.toml turns on for that target):
# no aarch64 OpenSSL is installed on the machine that cross-compiles.
#
# Slow when cold: a release build of every function, OpenSSL and librdkafka included, takes
# about 10 minutes on 2 cores (a target directory of its own under
# target/aarch64-unknown-linux-gnu); a warm one a few seconds per function. scripts/test.sh runs
# it as its own step before the tests; the test sam_build_makes_an_arm64_bootstrap_for_every_function
# (tests/tests/deploy_templates.rs) then runs it again, warm.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly script_name=infra/build.sh
# shellcheck source=infra/tools.sh
. "$repo/infra/tools.sh"
readonly rust_target=aarch64-unknown-linux-gnu
readonly sam_build_dir="$repo/target/sam/build"

ensure_rust_target() {
  if rustup target list --installed 2>/dev/null | grep -qx "$rust_target"; then
    return
  fi
  command -v rustup >/dev/null 2>&1 || die "rustup is missing: install Rust with rustup, then: rustup target add $rust_target"
  log "adding the Rust target $rust_target (rustup)"
  rustup target add "$rust_target" || die "rustup could not add $rust_target"
}

ensure_cargo_lambda() {
  cargo lambda --version >/dev/null 2>&1 ||
    die "cargo-lambda is missing: scripts/services.sh install puts it in place"
}

ensure_sam_cli() {
  "$repo/infra/lint.sh" install
  if [[ "$("$venv/bin/sam" --version 2>/dev/null)" == "SAM CLI, version $sam_cli_version" ]]; then
    return
  fi
  log "installing the AWS SAM CLI $sam_cli_version from PyPI into $venv (about a minute)"
  # cfn-lint stays at the version infra/tools.sh pins.
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "aws-sam-cli==$sam_cli_version" "cfn-lint==$cfn_lint_version" ||
    die "pip could not install aws-sam-cli $sam_cli_version (is PyPI reachable?)"
}

# The template as JSON (long-form intrinsics), for the function list.
template_json() {
  "$repo/infra/lint.sh" json "$1"
}

# Prints "<logical id> <value>" for each AWS::Serverless::Function; <value> is the Binary build
# property or the CodeUri, as asked.
functions_of() {
  local template="$1" field="$2"
  template_json "$template" | "$venv/bin/python" -c '
import json, sys
field = sys.argv[1]
resources = json.load(sys.stdin)["Resources"]
for name, resource in sorted(resources.items()):
    if resource.get("Type") != "AWS::Serverless::Function":
        continue
    if field == "binary":
        print(name, resource["Metadata"]["BuildProperties"]["Binary"])
    else:
        print(name, resource["Properties"]["CodeUri"])
' "$field"
}

# Fails unless $1 is a 64-bit little-endian ELF file for aarch64 (e_machine 0xb7).
check_aarch64_executable() {
  local file="$1" magic machine
  [[ -f "$file" ]] || die "$file is missing"
  magic="$(od -An -c -N4 "$file" | tr -d ' ')"
  machine="$(od -An -tx1 -j18 -N2 "$file" | tr -d ' ')"
  [[ "$magic" == '177ELF' && "$machine" == b700 ]] ||
    die "$file is not an aarch64 ELF executable (magic $magic, machine $machine)"
  [[ -x "$file" ]] || die "$file is not executable"
}

build_with_sam() {
  ensure_sam_cli
  log "sam build (cold: about 4 minutes on 2 cores)"
  cd "$repo"
  # The SAM CLI looks up cargo-lambda on PATH, and its telemetry would try the network.
  # --no-cached: SAM's cache only sees a function's CodeUri directory, not the workspace
  # crates it depends on (handler/, events/), so it would keep a stale binary; cargo's own
  # incremental build makes an unchanged rebuild take seconds anyway.
  SAM_CLI_TELEMETRY=0 PATH="$venv/bin:$PATH" "$venv/bin/sam" build --beta-features --no-cached \
    --template-file template.yaml --build-dir "$sam_build_dir"
  local name code_uri count=0
  while read -r name code_uri; do
    check_aarch64_executable "$sam_build_dir/$code_uri/bootstrap"
    log "ok: $name -> $sam_build_dir/$code_uri/bootstrap (aarch64)"
    count=$((count + 1))
  done < <(functions_of "$sam_build_dir/template.yaml" code-uri)
  ((count > 0)) || die "the built template has no function"
}

build_with_cargo_lambda() {
  "$repo/infra/lint.sh" install
  cd "$repo"
  local name binary binaries=() names=()
  while read -r name binary; do
    names+=("$name")
    binaries+=("$binary")
  done < <(functions_of template.yaml binary)
  ((${#binaries[@]} > 0)) || die "template.yaml has no function"
  local bin_args=() unique
  while read -r unique; do
    bin_args+=(--bin "$unique")
  done < <(printf '%s\n' "${binaries[@]}" | sort -u)
  log "cargo lambda build --release --arm64 ${bin_args[*]} (cold: about 4 minutes on 2 cores)"
  cargo lambda build --release --arm64 "${bin_args[@]}"
  local target_dir i
  target_dir="$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  for i in "${!binaries[@]}"; do
    check_aarch64_executable "$target_dir/lambda/${binaries[$i]}/bootstrap"
    log "ok: ${names[$i]} -> $target_dir/lambda/${binaries[$i]}/bootstrap (aarch64)"
  done
}

ensure_rust_target
ensure_cargo_lambda
case "${1:-sam}" in
  sam) build_with_sam ;;
  cargo-lambda) build_with_cargo_lambda ;;
  *) die "usage: infra/build.sh [sam|cargo-lambda]" ;;
esac
