"""One settings module: every value comes from the environment (or an env file) through django-environ."""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# LiteLLM fetches its model price map over the network on import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

env = environ.Env()
ENV_FILE = Path(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))
if ENV_FILE.is_file():
    env.read_env(str(ENV_FILE), overwrite=False)


def _secret(name: str, default: str | None = None) -> str | None:
    """A secret from NAME, or from the file NAME_FILE points at (Docker secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return env.str(name, default=default)


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = _secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. `make run` writes one into .env on first start; "
        "in other deployments set DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
WORKFLOWS_DIR = Path(env.str("WORKFLOWS_DIR", default=str(BASE_DIR / "workflows")))
SKILLS_DIR = Path(env.str("SKILLS_DIR", default=str(BASE_DIR / "skills")))
# Server folders operators may import skill libraries from in the admin (uploaded zips go to DATA_DIR).
SKILL_IMPORT_DIRS = [Path(p) for p in env.list("SKILL_IMPORT_DIRS", default=[])]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "axes",
    "settings_app",
    "providers",
    "catalog",
    "runs",
    "evals",
    "ninja",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "api.middleware.ApiHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before anything reads request.POST (the CSRF check does): anonymous or oversized multipart bodies are
    # refused unread, never spooled to the temp folder.
    "settings_app.uploads.UploadGateMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "settings_app.middleware.SecurityHeadersMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes, policy in settings_app.throttling): 5 failures for one username from one
# address lock that pair, and 20 failures from one address over any usernames (spraying) lock the address,
# each for 15 minutes.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "settings_app.throttling.SprayAwareHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=20)
if LOGIN_ADDRESS_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured("LOGIN_ADDRESS_FAILURE_LIMIT must be at least LOGIN_FAILURE_LIMIT.")
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]  # the order throttling.py relies on
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default, in DATA_DIR; any DATABASE_URL (postgres://…) works the same.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A web process and django-q2 workers write at once: WAL lets readers go on during a write,
    # IMMEDIATE takes the write lock up front (no upgrade deadlocks), the timeout waits for it.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog:index"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = DATA_DIR / "artifacts"
# Artifacts are never served as static media: downloads go through an access-checked view.
MEDIA_URL = "/artifacts-are-not-served/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_COOKIES = env.bool("SECURE_COOKIES", default=not DEBUG and env.bool("HTTPS", default=False))
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
if env.bool("HTTPS", default=False):
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# X-Forwarded-Proto is a client's word unless a proxy we run overwrites it: trust it only when the operator
# says the app is behind such a proxy (docs/operations.md), never just because HTTPS is on.
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# Uploads (only the skill-library zip today, at most 50 MiB): files above FILE_UPLOAD_MAX_MEMORY_SIZE go to
# the temp folder while a request is parsed; a whole multipart body above UPLOAD_MAX_BYTES is refused unread.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=55 * 1024 * 1024)

# Provider calls ignore HTTP_PROXY/HTTPS_PROXY/ALL_PROXY (a proxy would resolve names past the SSRF guard);
# an egress proxy for them is named here explicitly (docs/security.md).
PROVIDER_PROXY = env.str("PROVIDER_PROXY", default="")

# Encryption of provider keys (MultiFernet): comma-separated, the first is primary.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# The run pipeline.
RUN_MAX_SECONDS = env.int("RUN_MAX_SECONDS", default=900)
FULL_RUN_WINDOW_HOURS = env.int("FULL_RUN_WINDOW_HOURS", default=24 * 7)
# The model that judges rubric checks when a spec names none (empty: the model that ran the steps).
CHECKS_JUDGE_MODEL = env.str("CHECKS_JUDGE_MODEL", default="")
RUN_POLL_SECONDS = env.float("RUN_POLL_SECONDS", default=1.0)
# Each host writes its runs' heartbeats (one statement) this often; a running run without a heartbeat for
# RUN_STALE_SECONDS has lost its worker: another host (every RUN_RECOVERY_EVERY_SECONDS) marks it failed and
# resumable. 2 + 12 + 3 s: a crashed worker's runs are ended within 20 s (docs/operations.md).
RUN_HEARTBEAT_SECONDS = env.float("RUN_HEARTBEAT_SECONDS", default=2.0)
RUN_STALE_SECONDS = env.int("RUN_STALE_SECONDS", default=12)
RETENTION_DAYS = env.int("RETENTION_DAYS", default=30)
# The run engine (docs/architecture.md): each worker process hosts up to RUNS_PER_WORKER runs at once.
RUNS_PER_WORKER = env.int("RUNS_PER_WORKER", default=50)
# How often a worker's host looks for queued runs and cancels (one query each per tick, for all its runs),
# and how often streamed text is written to the run rows (batched).
RUN_TICK_SECONDS = env.float("RUN_TICK_SECONDS", default=0.1)
RUN_LIVE_FLUSH_SECONDS = env.float("RUN_LIVE_FLUSH_SECONDS", default=0.5)
RUN_RECOVERY_EVERY_SECONDS = env.float("RUN_RECOVERY_EVERY_SECONDS", default=3.0)
# Database connections a worker process's runs share, whatever RUNS_PER_WORKER is (runs/dbpool.py): a run
# holds one only between provider calls. A host holds 3 + Q_WORKERS x (2 + RUN_DB_CONNECTIONS) at most
# (docs/scaling.md). A write that meets a dropped connection is retried this long after reconnecting.
RUN_DB_CONNECTIONS = env.int("RUN_DB_CONNECTIONS", default=4)
RUN_DB_RETRY_SECONDS = env.float("RUN_DB_RETRY_SECONDS", default=10.0)
# A stopping worker (SIGTERM) claims nothing more and lets calls in flight finish for this long; then the
# rest go back to the queue, to resume from their first unfinished step. Keep it below the stop timeout of
# whatever stops the worker (docker compose's stop_grace_period is set above it).
RUN_STOP_GRACE_SECONDS = env.float("RUN_STOP_GRACE_SECONDS", default=20.0)
# Provider calls (docs/runs.md "Provider faults"). The circuit breaker opens a connection only on a sustained
# failure ratio: at least BREAKER_FAILURE_RATIO of at least BREAKER_MIN_CALLS calls within the last
# BREAKER_WINDOW_SECONDS; it stays open BREAKER_OPEN_SECONDS, then lets one probe call through.
BREAKER_FAILURE_RATIO = env.float("BREAKER_FAILURE_RATIO", default=0.5)
BREAKER_MIN_CALLS = env.int("BREAKER_MIN_CALLS", default=20)
BREAKER_WINDOW_SECONDS = env.float("BREAKER_WINDOW_SECONDS", default=30.0)
BREAKER_OPEN_SECONDS = env.float("BREAKER_OPEN_SECONDS", default=15.0)
# How often a worker process writes its counts and reads the shared state (no query per call).
BREAKER_SYNC_SECONDS = env.float("BREAKER_SYNC_SECONDS", default=1.0)
# Per-attempt time limits: each ends one attempt (retried with backoff), never the run, and none passes the
# run's deadline. Connect: TCP (and TLS) set up; first byte: the provider starts answering; idle: silence
# between two streamed chunks.
PROVIDER_CONNECT_SECONDS = env.float("PROVIDER_CONNECT_SECONDS", default=10.0)
PROVIDER_FIRST_BYTE_SECONDS = env.float("PROVIDER_FIRST_BYTE_SECONDS", default=60.0)
PROVIDER_IDLE_SECONDS = env.float("PROVIDER_IDLE_SECONDS", default=30.0)
# Attempts per model before the next model (the first included); backoff doubles from 0.5 s with jitter.
PROVIDER_ATTEMPTS = env.int("PROVIDER_ATTEMPTS", default=5)
# Queued + running runs one user may have at once (an operator can set another limit per user).
RUNS_ACTIVE_PER_USER = env.int("RUNS_ACTIVE_PER_USER", default=10)

# The code sandbox (runs/sandbox.py, docs/security.md): bubblewrap and a curated Python venv of its own.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=True)
SANDBOX_PYTHON = env.str("SANDBOX_PYTHON", default=str(BASE_DIR / ".venv-sandbox" / "bin" / "python"))
# Files a run takes in (uploads) and gives out (what its code writes to outputs/).
RUN_FILE_MAX_BYTES = env.int("RUN_FILE_MAX_BYTES", default=20 * 1024 * 1024)
RUN_OUTPUT_MAX_FILES = env.int("RUN_OUTPUT_MAX_FILES", default=20)
RUN_OUTPUT_MAX_BYTES = env.int("RUN_OUTPUT_MAX_BYTES", default=50 * 1024 * 1024)

# The HTTP API (docs/api.md): requests per user per minute (over all their tokens), counted in the database;
# working tokens one user may hold; how long a new token lasts by default (its owner may pick another).
API_TOKEN_REQUESTS_PER_MINUTE = env.int("API_TOKEN_REQUESTS_PER_MINUTE", default=120)
API_TOKENS_PER_USER = env.int("API_TOKENS_PER_USER", default=10)
API_TOKEN_DAYS = env.int("API_TOKEN_DAYS", default=90)
API_EVENTS_POLL_SECONDS = env.float("API_EVENTS_POLL_SECONDS", default=0.5)
API_EVENTS_MAX_SECONDS = env.int("API_EVENTS_MAX_SECONDS", default=300)
# Under ASGI an idle stream is a coroutine fed by the process's hub (api/event_hub.py): thousands fit in one
# process (the entrypoint raises the open-files limit for them). Per user too, so no one takes every slot.
API_EVENTS_STREAMS_PER_PROCESS = env.int("API_EVENTS_STREAMS_PER_PROCESS", default=4000)
API_EVENTS_STREAMS_PER_USER = env.int("API_EVENTS_STREAMS_PER_USER", default=100)

# django-q2 with the ORM broker. Run tasks only wake a worker's run host and return at once (the Run table is
# the queue), so short limits suffice: `retry` stays above `timeout` so a task still running is never handed
# to a second worker. Recycling a worker would send its hosted runs back to the queue: keep it rare.
Q_CLUSTER = {
    "name": "awp",
    "orm": "default",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 300,
    "retry": 360,
    "recycle": 100_000,
    "max_attempts": 2,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    "poll": env.float("Q_POLL", default=0.3),
    "label": "Task queue",
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "LiteLLM": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "django_q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
    },
}
