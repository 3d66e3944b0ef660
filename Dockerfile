# syntax=docker/dockerfile:1
# The mirror CLI in a container: the wheel built in a builder stage, installed into a virtual
# environment in a slim runtime image, run as a non-root user. Configs come from the package, or
# from a mounted project folder (mirror init) named by MIRROR_SETTINGS or --config-dir.
# tests/test_install.py runs the same two scripts (docker/*.sh) without Docker.
ARG PYTHON_VERSION=3.11
# The serve extra (FastAPI, uvicorn): the same image runs the CLI and `mirror serve` (Cloud Run).
# OpenAI and Firebase are core dependencies; the identity extra adds ~100 MB of face models.
ARG EXTRAS=serve

FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mirror_cli ./mirror_cli
COPY docker/build-wheels.sh /usr/local/bin/
RUN PYTHON=python build-wheels.sh /src /wheels "$EXTRAS"

FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS
COPY docker/install.sh /usr/local/bin/
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    PYTHON=python install.sh /wheels /opt/mirror "$EXTRAS"
RUN useradd --create-home --uid 10001 --user-group mirror && mkdir /work && chown mirror:mirror /work
ENV PATH=/opt/mirror/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["mirror"]
CMD ["--help"]
