#!/usr/bin/env bash
# Installs the Debian 12 packages hookd needs to build, run and test.
# Does nothing (and needs no network) when everything is already present.
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libevent-dev libcurl4-openssl-dev liblmdb-dev libsodium-dev libluajit-5.1-dev
      libyaml-dev libjansson-dev libpcre2-dev
      python3 curl ca-certificates
      libfaketime)  # tests/faults moves hookd's clock past storage.retention_days
# Node.js runs the check against the official standardwebhooks library.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm  >/dev/null 2>&1 || pkgs+=(npm)
# Debian's webhook receiver: tests/integration/test_auth.py checks hub-signature against it.
pkgs+=(webhook)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Test-only npm packages (the official Standard Webhooks library), pinned by package-lock.json.
if [ "${1:-}" = "--test" ] && [ -f tests/js/package.json ] && [ ! -d tests/js/node_modules/standardwebhooks ]; then
  (cd tests/js && npm ci --no-audit --no-fund --silent)
fi

# TLS and proxy tests (tests/integration/test_tls.py, test_proxy.py) make their CA, server and
# client certificates with the openssl CLI.
if ! dpkg-query -W -f='${Status}' openssl 2>/dev/null | grep -q "install ok installed"; then
  echo "install-deps: installing openssl"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openssl
fi
