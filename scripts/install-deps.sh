#!/usr/bin/env bash
# Installs the Debian 12 packages hookd needs to build, run and test (--test: also the
# servers and tools only the tests use). One apt-get run for everything missing; does
# nothing (and needs no network) when everything is already present.
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libevent-dev libcurl4-openssl-dev liblmdb-dev libsodium-dev libluajit-5.1-dev
      libyaml-dev libjansson-dev libpcre2-dev
      libnats-dev libhiredis-dev libmosquitto-dev  # plugins/nats, plugins/redis, plugins/mqtt
      python3 curl ca-certificates
      libfaketime  # tests/faults moves hookd's clock past storage.retention_days
      openssl      # test_tls.py and test_proxy.py make their CA and certificates with it
      webhook)     # Debian's webhook receiver: test_auth.py checks hub-signature against it
# Node.js runs the check against the official standardwebhooks library.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm  >/dev/null 2>&1 || pkgs+=(npm)
# The real servers the transport plugins' tests start on free loopback ports with configs of
# their own (tests/integration/peers_brokers.py). Their Debian packages come with a system
# service on the default port that nothing here uses: the install must not start it (a
# policy-rc.d that denies starts, for the install only, when the machine has none) nor leave
# it enabled.
servers=(nats-server redis-server mosquitto)
[ "${1:-}" = "--test" ] && pkgs+=("${servers[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" || { [ -z "$policy_added" ] || $SUDO rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$policy_added" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  for p in "${missing[@]}"; do
    case " ${servers[*]} " in
      *" $p "*) command -v systemctl >/dev/null 2>&1 && $SUDO systemctl disable --quiet "$p" 2>/dev/null || true ;;
    esac
  done
fi

# Test-only npm packages (the official Standard Webhooks library), pinned by package-lock.json.
if [ "${1:-}" = "--test" ] && [ -f tests/js/package.json ] && [ ! -d tests/js/node_modules/standardwebhooks ]; then
  (cd tests/js && npm ci --no-audit --no-fund --silent)
fi
