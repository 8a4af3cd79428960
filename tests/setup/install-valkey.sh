#!/usr/bin/env bash
# Makes sure valkey-server (Valkey 8) is on the PATH for the test suite, which starts its own
# servers on free ports: installs it from Debian's bookworm-backports when it is missing (adding
# that suite to apt's sources, reusing the machine's own Debian entry), and keeps the package from
# starting a system-wide server. Run by `npm test` and `.ci/run`; a no-op when already installed.
set -euo pipefail

INSTALLING=valkey
source "$(dirname "${BASH_SOURCE[0]}")/apt-helpers.sh"

install_valkey() {
  local sources=/etc/apt/sources.list.d/debian.sources
  local backports=/etc/apt/sources.list.d/backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f "$sources" ]; then
      # Reuse the machine's own Debian entry (deb822 format), with the suite swapped.
      awk 'BEGIN{RS="";ORS="\n\n"} /Suites:[^\n]*bookworm-updates/ {sub(/Suites: [^\n]*/, "Suites: bookworm-backports"); print}' \
        "$sources" | as_root tee "$backports" >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
      # One-line format: the bookworm-updates line, with the suite swapped.
      grep -E '^deb .* bookworm-updates' /etc/apt/sources.list | sed 's/bookworm-updates/bookworm-backports/' |
        as_root tee /etc/apt/sources.list.d/backports.list >/dev/null
    fi
    grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ ||
      die "could not add Debian bookworm-backports to the apt sources (no bookworm-updates entry to copy)"
  fi

  # Keep the package's maintainer scripts from starting a system-wide server: the tests start
  # their own on free ports. policy-rc.d is Debian's switch for that; it is removed right after.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    own_policy=1
  fi
  local rc=0
  as_root apt-get update -qq && as_root apt-get install -y -qq -t bookworm-backports valkey-server || rc=$?
  if [ "$own_policy" -eq 1 ]; then as_root rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "apt-get install -t bookworm-backports valkey-server failed (exit $rc)"
}

if command -v valkey-server >/dev/null; then
  exit 0 # already installed
fi
install_valkey
command -v valkey-server >/dev/null || die "valkey-server is still not on PATH after installing it"
valkey-server --version

# If a system service was started anyway (by an earlier install without the switch above), stop
# it: nothing here uses it and it should not hold port 6379 or memory during the tests.
if command -v systemctl >/dev/null && systemctl is-active --quiet valkey-server 2>/dev/null; then
  echo "stopping the system valkey-server service (the tests start their own)"
  as_root systemctl stop valkey-server || true
elif [ -s /run/valkey/valkey-server.pid ] && kill -0 "$(cat /run/valkey/valkey-server.pid)" 2>/dev/null &&
  [ -x /etc/init.d/valkey-server ]; then
  echo "stopping the system valkey-server service (the tests start their own)"
  as_root /etc/init.d/valkey-server stop >/dev/null 2>&1 || true
fi

