#!/usr/bin/env bash
# Build the GreenLens image (simulator/Dockerfile) the documented way, with no network during the build:
#
#   scripts/docker-image.sh [TAG]       # default greenlens/ggsim:latest
#
# 1. the base image: BASE_IMAGE (default greenlens/base:bookworm, made by scripts/docker-base-image.sh
#    when missing; set BASE_IMAGE=python:3.11-slim-bookworm where a registry is reachable);
# 2. the wheelhouse (scripts/wheelhouse.sh) and the build output (tools/greenlens_build.py all);
# 3. docker build --network none (the legacy builder when the client has no buildx).
# Needs a Docker engine (scripts/dockerd.sh start).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-greenlens/ggsim:latest}
BASE_IMAGE=${BASE_IMAGE:-greenlens/base:bookworm}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if ! docker info >/dev/null 2>&1; then
    echo "docker-image: no Docker engine answers (scripts/dockerd.sh start starts one)" >&2
    exit 1
fi
if [ "$BASE_IMAGE" = "greenlens/base:bookworm" ]; then
    scripts/docker-base-image.sh "$BASE_IMAGE"
fi
scripts/wheelhouse.sh
"$PY" tools/greenlens_build.py all >/dev/null
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
docker build -f simulator/Dockerfile -t "$TAG" --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" . \
    2> >(grep -v -e 'legacy builder is deprecated' -e 'BuildKit is currently disabled' -e 'environment-variable' >&2)
echo "docker-image: $TAG built ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)" >&2
