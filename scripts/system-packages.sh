#!/usr/bin/env bash
# The system packages Qure needs on Debian or Ubuntu, installed when missing.
#
#   scripts/system-packages.sh run     Pango and HarfBuzz (WeasyPrint), Python's venv
#   scripts/system-packages.sh test    the same, and Chromium (and libatomic1 for Playwright's
#                                      Node.js) for the browser tests
#   scripts/system-packages.sh --check test
#                                      say what is missing, install nothing (exit 1 if any)
#
# `make run` and `make test` call it. Missing packages are installed with apt-get when this
# runs as root or passwordless sudo works; otherwise it stops at once and prints the one
# command to run. Fonts are not needed: the PDFs use the fonts under qure/static/fonts/.
#
# Chromium: Debian packages it as `chromium`. Ubuntu's `chromium-browser` package only
# installs the snap (which needs snapd, absent in most containers); any Chromium or Chrome
# binary works if CHROMIUM_PATH names it.
set -euo pipefail

check_only=false
if [ "${1:-}" = "--check" ]; then
  check_only=true
  shift
fi
mode="${1:-run}"
case "$mode" in
  run | test) ;;
  *)
    echo "usage: $0 [--check] run|test" >&2
    exit 2
    ;;
esac
PYTHON="${PYTHON:-python3}"
OS_RELEASE="${OS_RELEASE:-/etc/os-release}"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

chromium_package() {
  if grep -qs '^ID=ubuntu' "$OS_RELEASE"; then echo chromium-browser; else echo chromium; fi
}

have_chromium() {
  { [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; } ||
    installed chromium || installed chromium-browser || [ -x /snap/bin/chromium ]
}

if ! command -v dpkg-query >/dev/null; then
  echo "Not a Debian or Ubuntu machine: install Pango (1.44 or newer), HarfBuzz, Python's" \
    "venv module and, for the tests, Chromium (or set CHROMIUM_PATH) yourself."
  exit 0
fi

missing=()
for package in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b; do
  installed "$package" || missing+=("$package")
done
# ensurepip is what Debian's python3-venv adds; a Python built elsewhere has it already.
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ "$mode" = test ]; then
  have_chromium || missing+=("$(chromium_package)")
  # Playwright drives the browser through its own Node.js, which needs libatomic; a
  # minimal Debian lacks it (and Debian's chromium does not pull it in).
  installed libatomic1 || missing+=(libatomic1)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
command_line="apt-get install -y --no-install-recommends ${missing[*]}"
if $check_only; then
  echo "Missing system packages: ${missing[*]}"
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "Qure needs system packages that are not installed: ${missing[*]}" >&2
  echo "Install them once, then run make again:" >&2
  echo >&2
  echo "    sudo $command_line" >&2
  exit 1
fi

echo "Installing system packages: ${missing[*]}…"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends "${missing[@]}"
