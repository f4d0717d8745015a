#!/usr/bin/env bash
# The test suite drives a real Chromium and starts real redis-server
# processes. Install them from Debian's packages when they are missing (as
# root, with apt-get); otherwise say what to install and stop.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the browser and Redis tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # Tests start their own redis-server on a free port; the packaged service is not needed.
  (service redis-server stop || true) >/dev/null 2>&1
  exit 0
fi
echo "missing: ${missing[*]}. Install them (Debian: sudo apt-get install -y ${missing[*]}) and run again." >&2
exit 1
