# One image for the web and the worker; docker-compose.yml runs it twice. The same entrypoint script
# `make run` uses starts it, so that script is what the test suite exercises.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PYTHON=python \
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
# Only the lock: every transitive package is pinned with hashes there, so --no-deps (see the Makefile).
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/base.txt \
    && pip check
# The sandbox's own curated venv, from its own lock (the same way `make install` builds .venv-sandbox).
ENV SANDBOX_PYTHON=/opt/sandbox-venv/bin/python
RUN python -m venv --without-pip /opt/sandbox-venv \
    && pip --python /opt/sandbox-venv/bin/python install --no-cache-dir --require-hashes --no-deps \
        -r requirements/sandbox.txt \
    && pip --python /opt/sandbox-venv/bin/python check

COPY . .
RUN useradd --uid 1000 --create-home app \
    && mkdir -p /data \
    && chown app:app /data
USER app
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["/app/scripts/entrypoint.sh"]
CMD ["web"]
