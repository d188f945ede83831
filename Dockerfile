# One image for the web and the worker; docker-compose.yml runs it twice. The same entrypoint script
# `make run` uses starts it, so that script is what the test suite exercises; `make compose-test` builds this
# file and runs the stack for real (docs/operations.md, "Docker or Podman").
#
# The base is a build argument: users get the official image; `make compose-test` passes a Debian bookworm
# base it builds with debootstrap (the same Python 3.11 on the same Debian release).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# PATH is spelled out: an imported base (the test's) carries no environment of its own.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PYTHON=/opt/venv/bin/python \
    DATA_DIR=/data \
    ENV_FILE=/data/.env \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app
# bubblewrap for the code sandbox (runs/sandbox.py); the container must allow user namespaces for it to work
# (docs/operations.md, "The code sandbox in Docker").
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
COPY requirements/base.txt requirements/base.txt
COPY requirements/sandbox.txt requirements/sandbox.txt
# As `make install` does: a new venv, only the lock (every transitive package pinned with its hash), so
# --no-deps, then pip check proves the lock is consistent.
RUN python3.11 -m venv /opt/venv \
    && pip install --require-hashes --no-deps -r requirements/base.txt \
    && pip check
# The sandbox's own curated venv, from its own lock (the same way `make install` builds .venv-sandbox).
ENV SANDBOX_PYTHON=/opt/sandbox-venv/bin/python
RUN python -m venv --without-pip /opt/sandbox-venv \
    && pip --python /opt/sandbox-venv/bin/python install --no-cache-dir --require-hashes --no-deps \
        -r requirements/sandbox.txt \
    && pip --python /opt/sandbox-venv/bin/python check

COPY . .
# The code belongs to root and is read-only for the app user; only /data (the volume) is writable. Its
# bytecode is compiled here, as it cannot be written at run time.
RUN python -m compileall -q /app \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data
USER app
VOLUME ["/data"]
EXPOSE 8000
# The web container answers its login page; the worker serves no HTTP (docker-compose.yml turns it off there).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "/app/scripts/healthcheck.py"]
ENTRYPOINT ["/app/scripts/entrypoint.sh"]
CMD ["web"]
