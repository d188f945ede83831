"""Run one call in its own OS process, started together with others: concurrency tests with real processes.

    python -m tests.support.racer GO_FILE DOTTED.FUNCTION JSON_ARGS

The process sets Django up (settings and database from the environment: tests.support.processes.subprocess_env),
opens its database connection, says it is ready (GO_FILE.ready.<pid>), waits until GO_FILE exists, calls the function with the JSON arguments as
keywords, and prints its result as JSON on the last line.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    go, dotted, raw = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    import django

    django.setup()
    from django.db import connection

    connection.ensure_connection()  # connected before the start, so the racers start level
    module, _, name = dotted.rpartition(".")
    function = getattr(importlib.import_module(module), name)
    Path(f"{go}.ready.{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.001)
    result = function(**json.loads(raw))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
