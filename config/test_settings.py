"""Settings for the test suite: the real settings with safe defaults for values a developer need not set."""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="awp-test-"))
os.environ.setdefault("ENV_FILE", os.devnull)
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "YlMY-Z8TrM2dVYBMWtDrTAknrDHVo8ShP8bVexWDh5U=")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from .settings import *  # noqa: F403
from .settings import DATA_DIR, DATABASES

# A file database (not :memory:) so a real qcluster subprocess can share it in end-to-end tests.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
(DATA_DIR / "staticfiles").mkdir(exist_ok=True)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
