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
COPY requirements/base.txt requirements/base.txt
# Only the lock: every transitive package is pinned with hashes there, so --no-deps (see the Makefile).
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/base.txt \
    && pip check

COPY . .
RUN useradd --uid 1000 --create-home app \
    && mkdir -p /data \
    && chown app:app /data
USER app
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["/app/scripts/entrypoint.sh"]
CMD ["web"]
