#!/usr/bin/env bash
# Builds the Rust conformance function in the folder named by its argument (package
# conformance-<folder>, a member of this repository's Cargo workspace) with
# `cargo build`, into the workspace's target directory, and prints, as its last line of stdout,
# the absolute path of its binary: the command aws-lambda-rie runs. Cargo's own output goes to
# stderr. Usage: tests/conformance/cargo-install.sh <folder> (the folders' install.sh call it).
# Settings: CARGO (the cargo to run, default `cargo` on PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly name="${1:?usage: cargo-install.sh <folder>}"
readonly package="conformance-$name"
readonly repo="$here/../.."
die() {
  printf '%s: error: %s\n' "$name/install.sh" "$*" >&2 || true
  exit 1
}

cargo="${CARGO:-cargo}"
command -v "$cargo" >/dev/null 2>&1 || die "$cargo is not on PATH: install Rust (https://rustup.rs)"
cd "$repo"
"$cargo" build -p "$package" >&2 || die "cargo build -p $package failed (its output is above)"
target_dir="$("$cargo" metadata --format-version 1 --no-deps |
  grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d '"' -f 4)" ||
  die "cargo metadata names no target directory"
readonly binary="$target_dir/debug/$package"
[[ -x "$binary" ]] || die "cargo build made no $binary"
printf '%s\n' "$binary"
