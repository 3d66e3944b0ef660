#!/bin/sh
# Runtime stage of the container (and of tests/test_install.py): a fresh virtual environment
# with mirror installed from the wheels only (no network, no source tree).
#   usage: install.sh WHEEL_DIR VENV_DIR [EXTRAS]
set -eu
wheels=$1
venv=$2
extras=${3-serve}
python=${PYTHON:-python3}
requirement=mirror-realm-avatars
[ -n "$extras" ] && requirement="$requirement[$extras]"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --no-index --find-links "$wheels" "$requirement"
