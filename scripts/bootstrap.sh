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
# The components' packages importable in this venv, each from its folder as its artifact lays it out (what an
# editable install does): tests, bench and scripts import them without touching sys.path.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for pkg in components/*/*/__init__.py; do dirname "$(dirname "$PWD/$pkg")"; done | sort -u >"$site/greenlens-components.pth"
# ... and the repository's development packages (devsupport, tools), for scripts run by their path.
echo "$PWD" >"$site/greenlens-repo.pth"
touch .venv/.installed
