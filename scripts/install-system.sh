#!/usr/bin/env bash
# System packages infuse needs beyond Python wheels. Idempotent: installed packages are skipped.
# chromium: Debian's headless browser, driven by Playwright for JavaScript-only pages
# (`infuse scrape crawl --render`); Playwright's own browser download cannot run offline.
set -euo pipefail
PACKAGES=(chromium)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  $SUDO apt-get install -y "${missing[@]}"
fi
