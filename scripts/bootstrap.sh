#!/usr/bin/env bash
# Set up everything `make test` and `make run` need on a fresh machine:
# Debian packages (scripts/debian-packages.txt) and the project venv (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2046
scripts/apt-ensure.sh $(grep -v '^#' scripts/debian-packages.txt)
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
# The components' own runtime requirements, so that tests can run their code in this venv too.
for req in components/*/requirements.txt; do
    [ -f "$req" ] && .venv/bin/pip install -q --disable-pip-version-check -r "$req"
done
touch .venv/.installed
