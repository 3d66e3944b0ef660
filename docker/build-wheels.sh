#!/bin/sh
# Build stage of the container (and of tests/test_install.py): wheels of mirror and of every
# dependency, so the runtime stage installs offline from them.
#   usage: build-wheels.sh SOURCE_DIR WHEEL_DIR [EXTRAS]
set -eu
src=$1
out=$2
extras=${3-serve}
python=${PYTHON:-python3}
target=$src
[ -n "$extras" ] && target="$src[$extras]"
"$python" -m pip wheel --quiet --wheel-dir "$out" "$target"
