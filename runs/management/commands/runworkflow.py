"""Run a workflow headless: the same pipeline as the web, in-process (or handed to the cluster with --queue)."""

from __future__ import annotations

import json
import signal
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog import inputs as run_inputs
from catalog.models import Workflow
from providers.crypto import EncryptionNotConfigured
from providers.resolution import ModelNotAvailable
from providers.services import ConnectionError_, import_environment
from runs import services
from runs.models import Mode, Run, Status


class Command(BaseCommand):
    help = "Run a workflow through validate/test/full from the command line; exits 0 only on success."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", nargs="?", help="Workflow id, e.g. learn-agentic-ai")
        parser.add_argument("--mode", choices=Mode.values, default=Mode.TEST)
        parser.add_argument(
            "--input", action="append", default=[], metavar="KEY=VALUE", help="Repeatable; typed by the schema"
        )
        parser.add_argument("--inputs-file", help="A JSON object of inputs")
        parser.add_argument(
            "--model", action="append", default=[], metavar="PROVIDER/MODEL", help="Repeatable, best first"
        )
        parser.add_argument("--user", default="cli", help="Run as this user (created if missing, without a password)")
        parser.add_argument("--budget-usd", help="Lower the run's budget (never above the workflow's)")
        parser.add_argument(
            "--skip-progression", action="store_true", help="Full run without a test run (needs the permission)"
        )
        parser.add_argument("--queue", action="store_true", help="Hand the run to the qcluster and wait for it")
        parser.add_argument("--json", action="store_true", help="End stdout with one JSON object")
        parser.add_argument("--cancel", metavar="RUN_ID", help="Ask a run to stop, then exit")
        parser.add_argument("--resume", metavar="RUN_ID", help="Continue a failed, cancelled or stopped run")
        parser.add_argument("--replay", metavar="RUN_ID", help="Run again reusing cached responses (no cost)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["cancel"]:
            return self._cancel(options["cancel"])
        if options["resume"] or options["replay"]:
            return self._again(options)
        if not options["workflow"]:
            raise CommandError("Name a workflow, e.g. `runworkflow learn-agentic-ai`.")
        workflow = (
            Workflow.objects.select_related("latest_version", "pinned_version").filter(slug=options["workflow"]).first()
        )
        if workflow is None or workflow.current_version is None:
            known = ", ".join(Workflow.objects.order_by("slug").values_list("slug", flat=True)[:30])
            raise CommandError(
                f"Unknown workflow '{options['workflow']}'. Known workflows: {known or 'none (run sync_workflows)'}."
            )
        version = workflow.current_version
        try:
            import_environment()  # a headless start-up: keys from the environment become encrypted connections
        except (ConnectionError_, EncryptionNotConfigured) as exc:
            raise CommandError(str(exc)) from exc
        values = self._inputs(version.input_schema, options)
        budget = self._budget(options["budget_usd"])
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
            )
        except run_inputs.InputError as exc:
            raise CommandError(f"Bad input: {exc}") from exc
        except (services.RunRefused, ModelNotAvailable) as exc:
            raise CommandError(str(exc)) from exc
        self._follow(run, options)

    def _follow(self, run: Run, options: dict[str, Any]) -> None:
        version = run.workflow_version
        self._progress(f"Run {run.pk} ({version.workflow.slug} v{version.number}, {run.mode})")
        previous = signal.signal(signal.SIGTERM, lambda *_: Run.objects.filter(pk=run.pk).update(cancel_requested=True))
        try:
            if options["queue"]:
                self._wait(run)
            else:
                services.execute(run.pk, on_progress=self._progress)
        finally:
            signal.signal(signal.SIGTERM, previous)
        run.refresh_from_db()
        self._report(run, as_json=options["json"])
        if run.status != Status.SUCCEEDED:
            sys.exit(1)

    def _progress(self, message: str) -> None:
        self.stderr.write(message)

    def _inputs(self, schema: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if options["inputs_file"]:
            try:
                values = json.loads(Path(options["inputs_file"]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CommandError(f"Cannot read --inputs-file: {exc}") from exc
            if not isinstance(values, dict):
                raise CommandError("--inputs-file must hold a JSON object of inputs.")
        for item in options["input"]:
            key, sep, raw = item.partition("=")
            if not sep:
                raise CommandError(f"--input takes KEY=VALUE, got '{item}'.")
            try:
                values[key.strip()] = run_inputs.coerce(schema, key.strip(), raw)
            except run_inputs.InputError as exc:
                raise CommandError(f"Bad input: {exc}") from exc
        return values

    def _budget(self, raw: str | None) -> Decimal | None:
        if raw is None:
            return None
        try:
            budget = Decimal(raw)
        except InvalidOperation:
            raise CommandError(f"--budget-usd takes a number of dollars, got '{raw}'.") from None
        if budget <= 0:
            raise CommandError("--budget-usd must be above zero.")
        return budget

    def _wait(self, run: Run) -> None:
        last = ""
        while True:
            run.refresh_from_db()
            line = f"{run.status}: {run.current_step}" if run.current_step else run.status
            if line != last:
                self._progress(line)
                last = line
            if run.is_finished:
                return
            time.sleep(0.3)

    def _report(self, run: Run, *, as_json: bool) -> None:
        artifacts = [{"name": a.name, "path": str(Path(a.file.path).resolve())} for a in run.artifacts.all()]
        if as_json:
            result = {
                "run_id": str(run.pk),
                "workflow": run.workflow_version.workflow.slug,
                "version": run.workflow_version.number,
                "spec_version": run.workflow_version.version,
                "mode": run.mode,
                "status": run.status,
                "reason": run.reason,
                "model": run.model_used,
                "cost_usd": None if run.cost_unpriced and not run.cost_usd else float(run.cost_usd),
                "cost_unpriced": run.cost_unpriced,
                "estimated_cost_usd": None if run.estimated_cost_usd is None else float(run.estimated_cost_usd),
                "tokens": run.tokens,
                "artifacts": artifacts,
            }
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"{run.status}: {run.reason}")
        for a in artifacts:
            self.stdout.write(f"  {a['name']}: {a['path']}")

    def _again(self, options: dict[str, Any]) -> None:
        earlier = self._run(options["resume"] or options["replay"])
        try:
            if options["resume"]:
                run = services.resume_run(earlier, queue=options["queue"])
            else:
                run = services.rerun(earlier, user=earlier.user, replay=True, queue=options["queue"])
        except (services.RunRefused, run_inputs.InputError) as exc:
            raise CommandError(str(exc)) from exc
        self._follow(run, options)

    def _run(self, run_id: str) -> Run:
        run = (
            Run.objects.select_related("workflow_version__workflow", "user").filter(pk=run_id).first()
            if _is_uuid(run_id)
            else None
        )
        if run is None:
            raise CommandError(f"No run {run_id}.")
        return run

    def _cancel(self, run_id: str) -> None:
        run = self._run(run_id)
        if not services.request_cancel(run):
            raise CommandError(f"Run {run_id} has already finished ({run.status}).")
        self.stdout.write(f"Cancel requested for run {run_id}.")


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
