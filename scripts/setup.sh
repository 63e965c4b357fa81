#!/usr/bin/env bash
# One-time machine setup for developing and testing Patchbay on Debian 12 (run as root, or with sudo).
# Installs the real SIP/speech peers the tests use, Node 22 and pnpm (pinned in package.json), then
# the workspace's dependencies. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

NODE_VERSION="$(cat .node-version)"
PNPM_VERSION="$(sed -n 's/.*"packageManager": "pnpm@\([^"]*\)".*/\1/p' package.json)"
NODE_PREFIX="/opt/patchbay-node"

apt_packages=(kamailio sip-tester baresip sipsak sipvicious espeak-ng pocketsphinx pocketsphinx-en-us sox
  tshark iproute2 ca-certificates)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node 22 comes from the npm registry's `node` package (a real Node binary), into its own prefix so the
# system's Node stays untouched; we then put it first on PATH through /usr/local/bin.
if [ "$("$NODE_PREFIX/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  echo "setup: installing Node $NODE_VERSION into $NODE_PREFIX"
  $SUDO npm install -g --silent --no-fund --no-audit --prefix "$NODE_PREFIX" "node@$NODE_VERSION" >/dev/null
fi
if [ "$("$NODE_PREFIX/bin/pnpm" --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION"
  $SUDO npm install -g --silent --no-fund --no-audit --prefix "$NODE_PREFIX" "pnpm@$PNPM_VERSION" >/dev/null
fi
for tool in node pnpm; do $SUDO ln -sf "$NODE_PREFIX/bin/$tool" "/usr/local/bin/$tool"; done
hash -r
echo "setup: node $(node --version), pnpm $(pnpm --version)"

pnpm install --frozen-lockfile --reporter=append-only
echo "setup: done. Next: 'pnpm demo' runs a call end to end; 'pnpm test' runs every test."
