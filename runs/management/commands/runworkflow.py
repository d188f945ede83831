"""Run a workflow headless: the same pipeline as the web, in-process (or handed to the cluster with --queue).

A script can rely on two things (docs/runs.md, "runworkflow for scripts"): with --json the last line on
stdout is one JSON object whatever happens, and the exit code says what happened:

    0 succeeded · 1 failed · 2 usage error · 3 refused before running · 4 stopped at a cap · 5 cancelled
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connection, connections

from catalog import inputs as run_inputs
from catalog.file_inputs import Upload
from catalog.models import Workflow
from providers.crypto import EncryptionNotConfigured
from providers.resolution import ModelNotAvailable
from providers.services import ConnectionError_, import_environment
from runs import files as run_files
from runs import services
from runs.models import Mode, Run, Status
from runs.money import usd_text

log = logging.getLogger(__name__)

SUCCEEDED, FAILED, USAGE, REFUSED, STOPPED, CANCELLED = 0, 1, 2, 3, 4, 5
EXIT_CODES = {Status.SUCCEEDED: SUCCEEDED, Status.FAILED: FAILED, Status.STOPPED: STOPPED, Status.CANCELLED: CANCELLED}
QUEUE_WAIT_SECONDS = 60.0  # --queue: how long to wait for a worker to take the run before giving up
CANCEL_GRACE_SECONDS = 1.5  # after SIGINT/SIGTERM: how long the run gets to notice before the command exits


class Command(BaseCommand):
    help = (
        "Run a workflow through validate/test/full from the command line. Exit codes: 0 succeeded, 1 failed, "
        "2 usage error, 3 refused before running, 4 stopped at a cap, 5 cancelled."
    )

    as_json = False
    _argv: tuple[str, ...] = ()

    def run_from_argv(self, argv: list[str]) -> None:
        self._argv = tuple(argv)  # so an argument error can still end stdout with JSON
        super().run_from_argv(argv)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        complain = parser.error

        def error(message: str) -> NoReturn:
            if "--json" in self._argv:
                self._emit({"status": "error", "reason": message, "exit_code": USAGE})
            complain(message)  # argparse exits with 2 from the command line
            raise CommandError(message, returncode=USAGE)  # (complain does not return)

        parser.error = error  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", nargs="?", help="Workflow id, e.g. learn-agentic-ai")
        parser.add_argument("--mode", choices=Mode.values, default=Mode.TEST)
        parser.add_argument(
            "--input", action="append", default=[], metavar="KEY=VALUE", help="Repeatable; typed by the schema"
        )
        parser.add_argument("--inputs-file", help="A JSON object of inputs")
        parser.add_argument(
            "--file", action="append", default=[], metavar="NAME=PATH", help="Repeatable: a file for a file input"
        )
        parser.add_argument(
            "--model", action="append", default=[], metavar="PROVIDER/MODEL", help="Repeatable, best first"
        )
        parser.add_argument("--user", default="cli", help="Run as this user (created if missing, without a password)")
        parser.add_argument("--budget-usd", help="Lower the run's budget (never above the workflow's)")
        parser.add_argument(
            "--skip-progression", action="store_true", help="Full run without a test run (needs the permission)"
        )
        parser.add_argument("--queue", action="store_true", help="Hand the run to the qcluster and wait for it")
        parser.add_argument(
            "--queue-wait",
            type=float,
            default=QUEUE_WAIT_SECONDS,
            metavar="SECONDS",
            help=f"With --queue: give up (exit 3) if no worker takes the run (default {QUEUE_WAIT_SECONDS:g} s)",
        )
        parser.add_argument("--json", action="store_true", help="End stdout with one JSON object, whatever happens")
        parser.add_argument("--cancel", metavar="RUN_ID", help="Ask a run to stop, then exit")
        parser.add_argument("--resume", metavar="RUN_ID", help="Continue a failed, cancelled or stopped run")
        parser.add_argument("--replay", metavar="RUN_ID", help="Run again reusing cached responses (no cost)")

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        # Until a run exists (it installs its own, which cancel it), a signal ends the command with its line.
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._handle(options)
        except _Interrupted as stop:
            self._refuse(CANCELLED, f"{stop.name} before the run started: nothing was run.", status="cancelled")
        except (CommandError, SystemExit):
            raise
        except Exception as exc:  # the JSON promise holds even for a bug: say so on the last line
            log.exception("runworkflow failed")
            self._refuse(FAILED, f"Internal error: {type(exc).__name__}. See the log for details.")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, options: dict[str, Any]) -> None:
        if options["cancel"]:
            return self._cancel(options["cancel"])
        if options["resume"] or options["replay"]:
            return self._again(options)
        if not options["workflow"]:
            self._refuse(USAGE, "Name a workflow, e.g. `runworkflow learn-agentic-ai`.")
        workflow = (
            Workflow.objects.select_related("latest_version", "pinned_version").filter(slug=options["workflow"]).first()
        )
        if workflow is None or workflow.current_version is None:
            published = Workflow.objects.filter(latest_version__isnull=False)  # drafts are not named to anyone
            known = ", ".join(published.order_by("slug").values_list("slug", flat=True)[:30])
            self._refuse(
                USAGE,
                f"Unknown workflow '{options['workflow']}'. Known workflows: {known or 'none (run sync_workflows)'}.",
            )
        version = workflow.current_version
        values = self._inputs(version.input_schema, options)
        values, files = self._files(version.input_schema, options, values)
        budget = self._budget(options["budget_usd"])
        try:
            import_environment()  # a headless start-up: keys from the environment become encrypted connections
        except (ConnectionError_, EncryptionNotConfigured) as exc:
            self._refuse(REFUSED, str(exc))
        user, _ = get_user_model().objects.get_or_create(username=options["user"])
        try:
            run = services.start_run(
                workflow_version=version,
                user=user,
                inputs=values,
                mode=options["mode"],
                models=options["model"],
                budget_usd=budget,
                skip_progression=options["skip_progression"],
                queue=options["queue"],
                files=files,
            )
        except run_inputs.InputError as exc:
            self._refuse(USAGE, f"Bad input: {exc}")
        except ModelNotAvailable as exc:
            self._refuse(USAGE, str(exc))
        except services.RunRefused as exc:
            self._refuse(REFUSED, str(exc))
        self._follow(run, options)

    # -- following a run ---------------------------------------------------------------------------------
    def _follow(self, run: Run, options: dict[str, Any]) -> None:
        version = run.workflow_version
        self._progress(f"Run {run.pk} ({version.workflow.slug} v{version.number}, {run.mode})")
        self._cancelled_at: float | None = None
        self._abandoned = False
        previous = {sig: signal.signal(sig, self._on_signal(run)) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, _abandon)
        try:
            if options["queue"]:
                self._wait(run, options["queue_wait"])
            else:
                self._execute(run)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for sig, handler in previous.items():
                # The run has ended: a signal now must not interrupt the report, the one line that says so.
                signal.signal(sig, signal.SIG_IGN if sig in (signal.SIGINT, signal.SIGTERM) else handler)
        run.refresh_from_db()
        self._report(run)

    def _on_signal(self, run: Run) -> Any:
        def cancel(signum: int, frame: Any) -> None:
            if self._cancelled_at is not None:
                return
            self._cancelled_at = time.monotonic()
            self._progress(f"{signal.Signals(signum).name}: cancelling the run…")
            # Not from inside the handler: the main thread may be in the middle of a query on its connection.
            threading.Thread(target=_request_cancel, args=(run.pk,), daemon=True).start()
            # The engine notices the flag within a moment; if a call holds it longer, stop waiting for it.
            signal.setitimer(signal.ITIMER_REAL, CANCEL_GRACE_SECONDS)

        return cancel

    def _execute(self, run: Run) -> None:
        try:
            services.execute(run.pk, on_progress=self._progress, on_text=self._on_text)
        except _Abandoned:
            self._abandoned = True

    def _wait(self, run: Run, wait: float) -> None:
        last, queued_since, shown = "", time.monotonic(), ""
        while True:
            run.refresh_from_db()
            line = f"{run.status}: {run.current_step}" if run.current_step else run.status
            if line != last:
                self._progress(line)
                last = line
            # The worker flushes what the model streamed so far: show what is new since the last look.
            live = run.live_output
            if live and live != shown:
                self._on_text(live[len(shown) :] if live.startswith(shown) else "\n" + live)
            shown = live
            if run.is_finished:
                return
            if self._cancelled_at is not None and time.monotonic() - self._cancelled_at > CANCEL_GRACE_SECONDS:
                return
            if run.status == Status.QUEUED and time.monotonic() - queued_since > wait:
                services.request_cancel(run)
                self._refuse(
                    REFUSED,
                    f"No worker took the run within {wait:g} s, so it was cancelled: is the cluster running "
                    "(`manage.py qcluster`)? Run without --queue to run it in this process.",
                    run=run,
                )
            time.sleep(0.2)

    def _progress(self, message: str) -> None:
        self.stderr.write(message)

    def _on_text(self, text: str) -> None:
        """Streamed model text, as it arrives (stderr: stdout stays for the result)."""
        self.stderr.write(text, ending="")
        self.stderr.flush()

    # -- results -----------------------------------------------------------------------------------------
    def _emit(self, result: dict[str, Any]) -> None:
        result.setdefault("run_id", None)  # on every path: null when no run was made
        self.stdout.write(json.dumps(result))
        self.stdout.flush()

    def _refuse(self, code: int, reason: str, run: Run | None = None, status: str = "") -> NoReturn:
        """End before (or instead of) a run: one JSON line with --json, one line on stderr, the exit code."""
        if self.as_json:
            status = status or ("error" if code in (USAGE, FAILED) else "refused")
            self._emit({"status": status, "reason": reason, "exit_code": code, "run_id": str(run.pk) if run else None})
        raise CommandError(reason, returncode=code)

    def _report(self, run: Run) -> None:
        status, reason = run.status, run.reason
        if self._cancelled_at is not None and (not run.is_finished or self._abandoned):
            # The engine did not stop within the grace period; the run is cancelled, whatever its last write said.
            reason = "Cancelled from the command line; the call in progress was abandoned."
            Run.objects.filter(pk=run.pk).exclude(status=Status.SUCCEEDED).update(
                status=Status.CANCELLED, reason=reason
            )
            status = Status.CANCELLED
        code = EXIT_CODES.get(Status(status), FAILED)
        artifacts = [{"name": a.name, "path": str(Path(a.file.path).resolve())} for a in run.artifacts.all()]
        if self.as_json:
            self._emit(
                {
                    "run_id": str(run.pk),
                    "workflow": run.workflow_version.workflow.slug,
                    "version": run.workflow_version.number,
                    "spec_version": run.workflow_version.version,
                    "mode": run.mode,
                    "status": status,
                    "reason": reason,
                    "exit_code": code,
                    "model": run.model_used,
                    # Money as in the API and events: exact decimal strings (docs/api.md)
                    "cost_usd": None if run.cost_unpriced and not run.cost_usd else usd_text(run.cost_usd),
                    "cost_unpriced": run.cost_unpriced,
                    "estimated_cost_usd": usd_text(run.estimated_cost_usd),
                    "tokens": {
                        "prompt": run.prompt_tokens,
                        "completion": run.completion_tokens,
                        "total": run.prompt_tokens + run.completion_tokens,
                    },
                    "artifacts": artifacts,
                    "checks": run.check_results or [],
                    "checks_passed": run.checks_passed,
                    "unlocked_by": str(run.unlocked_by_id) if run.unlocked_by_id else None,
                }
            )
        else:
            self.stdout.write(f"{status}: {reason}")
            for check in run.check_results or []:
                self.stdout.write(
                    f"  check {check['name']}: {'passed' if check['passed'] else 'FAILED'} ({check['reason']})"
                )
            for a in artifacts:
                self.stdout.write(f"  {a['name']}: {a['path']}")
        if self._cancelled_at is not None and self._argv:
            # Interrupted from a terminal or a supervisor: the result is out, so leave now. Interpreter shutdown
            # after LiteLLM was imported can take seconds, past the 2 s a supervisor expects (docs/runs.md).
            self.stdout.flush()
            self.stderr.flush()
            connections.close_all()
            os._exit(code)
        if code:
            sys.exit(code)

    # -- other actions -----------------------------------------------------------------------------------
    def _inputs(self, schema: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if options["inputs_file"]:
            try:
                values = json.loads(Path(options["inputs_file"]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                self._refuse(USAGE, f"Cannot read --inputs-file: {exc}")
            if not isinstance(values, dict):
                self._refuse(USAGE, "--inputs-file must hold a JSON object of inputs.")
        for item in options["input"]:
            key, sep, raw = item.partition("=")
            if not sep:
                self._refuse(USAGE, f"--input takes KEY=VALUE, got '{item}'.")
            try:
                values[key.strip()] = run_inputs.coerce(schema, key.strip(), raw)
            except run_inputs.InputError as exc:
                self._refuse(USAGE, f"Bad input: {exc}")
        return values

    def _files(
        self, schema: dict[str, Any], options: dict[str, Any], values: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Upload]]:
        """--file NAME=PATH (repeatable; several for one input make a list) read and checked by the spec."""
        given: dict[str, list[Upload]] = {}
        for item in options["file"]:
            key, sep, raw = item.partition("=")
            if not sep or not raw:
                self._refuse(USAGE, f"--file takes NAME=PATH, got '{item}'.")
            path = Path(raw).expanduser()
            try:
                if path.stat().st_size > settings.RUN_FILE_MAX_BYTES:
                    self._refuse(USAGE, f"Bad input: {key}: {path.name} is larger than the server allows.")
                data = path.read_bytes()
            except OSError as exc:
                self._refuse(USAGE, f"Cannot read --file {item}: {exc.strerror or exc}")
            given.setdefault(key.strip(), []).append(Upload(path.name, data))
        try:
            described, blobs = run_files.uploads_for(schema, given)
        except run_inputs.InputError as exc:
            self._refuse(USAGE, f"Bad input: {exc}")
        return {**values, **described}, blobs

    def _budget(self, raw: str | None) -> Decimal | None:
        if raw is None:
            return None
        try:
            budget = Decimal(raw)
        except InvalidOperation:
            self._refuse(USAGE, f"--budget-usd takes a number of dollars, got '{raw}'.")
        if not budget.is_finite() or budget <= 0:
            self._refuse(USAGE, "--budget-usd must be a number of dollars above zero.")
        return budget

    def _again(self, options: dict[str, Any]) -> None:
        earlier = self._run(options["resume"] or options["replay"])
        try:
            if options["resume"]:
                run = services.resume_run(earlier, queue=options["queue"])
            else:
                run = services.rerun(earlier, user=earlier.user, replay=True, queue=options["queue"])
        except (services.RunRefused, run_inputs.InputError) as exc:
            self._refuse(REFUSED, str(exc))
        self._follow(run, options)

    def _run(self, run_id: str) -> Run:
        run = (
            Run.objects.select_related("workflow_version__workflow", "user").filter(pk=run_id).first()
            if _is_uuid(run_id)
            else None
        )
        if run is None:
            self._refuse(USAGE, f"No run {run_id}.")
        return run

    def _cancel(self, run_id: str) -> None:
        run = self._run(run_id)
        if not services.request_cancel(run):
            self._refuse(REFUSED, f"Run {run_id} has already finished ({run.status}).", run=run)
        if self.as_json:
            self._emit({"status": "cancel_requested", "reason": "", "exit_code": SUCCEEDED, "run_id": str(run.pk)})
        else:
            self.stdout.write(f"Cancel requested for run {run_id}.")


class _Interrupted(BaseException):  # not an Exception: nothing on the way may swallow it
    """SIGINT or SIGTERM before the run existed."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


def _interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted(signal.Signals(signum).name)


class _Abandoned(BaseException):  # not an Exception: the pipeline's `except Exception` must not catch it
    """Raised in the main thread when a cancelled run did not stop within the grace period."""


def _abandon(signum: int, frame: Any) -> None:
    raise _Abandoned


def _request_cancel(run_id: Any) -> None:
    close_old_connections()
    try:
        run = Run.objects.filter(pk=run_id).first()
        if run is not None:
            services.request_cancel(run)
    finally:
        connection.close()


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
