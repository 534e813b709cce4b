#!/usr/bin/env bash
# Install everything Till Ledger needs on a fresh Debian/Ubuntu machine:
#   system packages (only those missing; as root or through sudo), a virtualenv in .venv, the project.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# pyscard compiles against libpcsclite; pcscd + vsmartcard-vpcd give the PC/SC daemon and the virtual
# card reader the hardware tests use; gcc and the Python headers build pyscard; poppler reads back
# the PDF exports in the tests; chromium runs the web pages' browser tests (Playwright drives this
# system browser and never downloads one of its own).
APT_PACKAGES=(libpcsclite-dev pcscd vsmartcard-vpcd gcc python3-dev python3-venv poppler-utils poppler-data
              chromium fonts-noto-cjk)
PYTHON=${PYTHON:-python3}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: please install these system packages yourself: ${missing[*]}" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "install.sh: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    raise SystemExit(f"install.sh: Python 3.11 or newer is needed, found {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "install.sh: ready (.venv/bin/till)"
