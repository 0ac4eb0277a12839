#!/usr/bin/env bash
# Install the Debian packages labkit's tests need, when missing: a PostgreSQL server
# (the store's tests start their own) and Chromium (real-browser widget tests).
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else
    echo "labkit tests need Debian packages: ${need[*]}. Run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
else SUDO=""; fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
