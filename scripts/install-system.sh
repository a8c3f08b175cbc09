#!/usr/bin/env bash
# System packages the tests and the optional features need, from Debian's archive (idempotent).
#   chromium: the headless browser the crawler renders JS pages with and the web-page tests drive.
# Runs as root (CI, the dev machines); elsewhere it says what to install and exits 0, since
# infuse itself runs without these.
set -euo pipefail
PACKAGES=(chromium fonts-dejavu-core)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Optional system packages missing: ${missing[*]} (install them with apt-get as root)." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
