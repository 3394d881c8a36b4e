#!/usr/bin/env bash
# Installs the `node-powertools` conformance function's dependencies from the npm registry into
# ${KL_CACHE_DIR:-~/.cache/kafka-lambda}/conformance/node-powertools/node_modules (never into the
# work tree), once, and prints as its last stdout line the command aws-lambda-rie runs:
#
#   /usr/bin/env NODE_PATH=<cache>/node_modules <node> <cache>/node_modules/aws-lambda-ric/bin/index.mjs index.handler
#
# - aws-lambda-ric: AWS's Node.js runtime interface client. 4.x declares `engines: node >=22`;
#   3.3.0 is the newest that supports Node 20 (this machine's node), so it is picked for
#   Node < 22 and 4.0.2 for Node >= 22 (KL_NODE_RIC_VERSION overrides). Its npm install builds
#   curl and aws-lambda-cpp from the sources it ships (3.x runs curl's buildconf: autoconf,
#   automake, libtool) and a node-gyp addon against the headers of the installed node
#   (npm_config_nodedir: node-gyp cannot download headers here).
# - @aws-lambda-powertools/kafka: its kafkaConsumer decodes the records.
# NODE_PATH lets index.cjs (CommonJS: ES modules ignore NODE_PATH) resolve them from the cache.
# Current when the marker holds the wanted versions and node's version: then nothing runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly script_name=conformance/node-powertools
# shellcheck source=scripts/lib/common.sh
. "$here/../../../scripts/lib/common.sh"

readonly kafka_version=2.35.0
readonly cache_dir="${KL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-lambda}/conformance/node-powertools"
readonly marker="$cache_dir/.complete"
readonly ric_entry="$cache_dir/node_modules/aws-lambda-ric/bin/index.mjs"
readonly ric_entry4="$cache_dir/node_modules/aws-lambda-ric/index.mjs"

# The Debian packages that provide the programs aws-lambda-ric's native build runs.
ensure_build_tools() {
  local -A package_of=([cmake]=cmake [make]=make [g++]=g++ [autoreconf]=autoconf
    [automake]=automake [libtoolize]=libtool [python3]=python3 [perl]=perl [xz]=xz-utils)
  local tool missing=()
  for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
  done
  ((${#missing[@]} == 0)) ||
    install_debian_packages "aws-lambda-ric builds curl and aws-lambda-cpp on install" "${missing[@]}" >&2
}

main() {
  command -v node >/dev/null 2>&1 || install_debian_packages "the function runs on Node.js" nodejs >&2
  command -v npm >/dev/null 2>&1 || install_debian_packages "the function's packages come through npm" npm >&2
  local node node_version node_major ric_version want nodedir entry started="$SECONDS"
  node="$(readlink -f "$(command -v node)")"
  node_version="$("$node" --version)"
  node_major="${node_version#v}"
  node_major="${node_major%%.*}"
  if ((node_major >= 22)); then ric_version="${KL_NODE_RIC_VERSION:-4.0.2}"; else ric_version="${KL_NODE_RIC_VERSION:-3.3.0}"; fi
  want="aws-lambda-ric@$ric_version @aws-lambda-powertools/kafka@$kafka_version node@$node_version"

  mkdir -p "$cache_dir"
  exec 8>"$cache_dir/install.lock"
  flock -w 900 8 || die "another install held $cache_dir/install.lock for 15 minutes"
  # Current: the marker names what is wanted and the native addon was built (3.x keeps it in
  # dist/, 4.x at the package's root).
  if ! [[ -f "$marker" && "$(<"$marker")" == "$want" ]] ||
    ! [[ -f "$cache_dir/node_modules/aws-lambda-ric/dist/rapid-client.node" ||
      -f "$cache_dir/node_modules/aws-lambda-ric/rapid-client.node" ]]; then
    ensure_build_tools
    # node-gyp builds against the installed node's headers (it cannot download them here).
    nodedir="$(dirname "$(dirname "$node")")"
    [[ -f "$nodedir/include/node/node_api.h" ]] ||
      die "Node.js headers are missing ($nodedir/include/node/node_api.h): node-gyp needs them to build aws-lambda-ric"
    log "installing $want into $cache_dir (builds native code: minutes)"
    rm -rf "$cache_dir/node_modules" "$cache_dir/package-lock.json" "$marker"
    cat >"$cache_dir/package.json" <<EOF
{
  "name": "kl-conformance-node-powertools",
  "private": true,
  "description": "dependencies of tests/conformance/node-powertools (written by its install.sh)",
  "dependencies": {
    "aws-lambda-ric": "$ric_version",
    "@aws-lambda-powertools/kafka": "$kafka_version"
  }
}
EOF
    (cd "$cache_dir" && npm_config_nodedir="$nodedir" npm install --no-audit --no-fund \
      --foreground-scripts --loglevel=info) >"$cache_dir/install.log" 2>&1 || {
      tail -n 40 "$cache_dir/install.log" >&2
      die "npm install of aws-lambda-ric@$ric_version and @aws-lambda-powertools/kafka@$kafka_version failed (is the npm registry reachable? did the native build fail?); its log is $cache_dir/install.log"
    }
    # The addon links curl and aws-lambda-cpp statically: their build trees (~150 MB, which
    # aws-lambda-ric 3.x's own clean-up misses) are not needed to run.
    find "$cache_dir/node_modules/aws-lambda-ric/deps" -mindepth 1 -maxdepth 1 -type d \
      \( -name 'curl-*' -o -name 'aws-lambda-cpp-*' -o -name artifacts \) -exec rm -rf {} + 2>/dev/null || true
    printf '%s\n' "$want" >"$marker"
    log "installed $want ($((SECONDS - started))s)"
  fi
  entry="$ric_entry"
  [[ -f "$entry" ]] || entry="$ric_entry4"
  [[ -f "$entry" ]] || die "aws-lambda-ric's entry point is missing under $cache_dir/node_modules/aws-lambda-ric"
  printf '%s\n' "/usr/bin/env NODE_PATH=$cache_dir/node_modules $node $entry index.handler"
}

main "$@"
