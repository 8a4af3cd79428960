#!/usr/bin/env bash
# Makes sure Debian's `chromium` is installed for the browser tests (tests/browser/), which drive it
# through playwright-core with executablePath (no browser download). Installs it with apt when it
# is missing, which needs root or sudo. Run by `npm test` and `.ci/run`; a no-op when installed.
set -euo pipefail

INSTALLING=chromium
source "$(dirname "${BASH_SOURCE[0]}")/apt-helpers.sh"

if command -v chromium >/dev/null; then
  exit 0 # already installed
fi
rc=0
as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends chromium || rc=$?
[ "$rc" -eq 0 ] || die "apt-get install chromium failed (exit $rc)"
command -v chromium >/dev/null || die "chromium is still not on PATH after installing it"
chromium --version
