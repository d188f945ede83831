#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import json
import os
import signal
import sys
from typing import Any


def _runworkflow_start_up_signals() -> None:
    """`runworkflow` promises a last JSON line and exit code 5 on SIGINT/SIGTERM at any moment (docs/runs.md):
    while Django loads, before the command installs its own handlers, these say so."""

    def stop(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if "--json" in sys.argv:
            line = {"status": "cancelled", "reason": f"{name} during start-up: nothing was run.", "exit_code": 5}
            sys.stdout.write(json.dumps({**line, "run_id": None}) + "\n")
        sys.stderr.write(f"{name} during start-up: nothing was run.\n")
        sys.stdout.flush()
        os._exit(5)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] == ["runworkflow"]:
        _runworkflow_start_up_signals()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
