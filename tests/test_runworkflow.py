from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from runs.models import Mode, Run, Status

pytestmark = pytest.mark.django_db


def runworkflow(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("runworkflow", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_it_runs_a_test_run_and_ends_with_one_json_object(catalog):
    code, out, err = runworkflow("learn-agentic-ai", "--mode", "test", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    assert result["workflow"] == "learn-agentic-ai" and result["mode"] == "test" and result["version"] == 1
    assert result["tokens"]["total"] == result["tokens"]["prompt"] + result["tokens"]["completion"] > 0
    assert result["cost_usd"] is None and result["cost_unpriced"] is True
    paths = {a["name"]: Path(a["path"]) for a in result["artifacts"]}
    assert set(paths) == {"notes.md", "trace.json", "validation.json"}
    assert all(p.is_absolute() and p.is_file() for p in paths.values())
    assert "Step 2/2" in err  # progress goes to stderr


def test_inputs_are_typed_by_the_schema(catalog, tmp_path):
    inputs_file = tmp_path / "inputs.json"
    inputs_file.write_text(json.dumps({"topic": "Memory for agents"}))
    code, _, err = runworkflow(
        "learn-agentic-ai",
        "--inputs-file",
        str(inputs_file),
        "--input",
        "session_minutes=20",
        "--input",
        "focus=memory,planning",
        "--input",
        "include_questions=no",
    )
    assert code == 0, err
    run = Run.objects.get()
    assert run.inputs["topic"] == "Memory for agents"
    assert run.inputs["session_minutes"] == 20
    assert run.inputs["focus"] == ["memory", "planning"]
    assert run.inputs["include_questions"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-workflow"], "Unknown workflow 'no-such-workflow'"),
        (
            ["learn-agentic-ai", "--input", "session_minutes=5000"],
            "Bad input: session_minutes: Enter a number of at most 240.",
        ),
        (
            ["learn-agentic-ai", "--input", "session_minutes=lots"],
            "Bad input: session_minutes: 'lots' is not a valid integer.",
        ),
        (["learn-agentic-ai", "--input", "colour=blue"], "Bad input: colour: Unknown input"),
        (["learn-agentic-ai", "--model", "nonsense"], "is not a model name of the form provider/model"),
        (["learn-agentic-ai", "--mode", "full"], "needs a passed test run"),
        (["learn-agentic-ai", "--budget-usd", "abc"], "--budget-usd takes a number"),
    ],
)
def test_bad_requests_exit_non_zero_with_one_clear_line_and_no_run(catalog, args, message):
    with pytest.raises(CommandError) as err:
        call_command("runworkflow", *args, stdout=StringIO(), stderr=StringIO())
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert not Run.objects.exists()


def test_a_model_without_a_connection_is_refused_before_a_run_with_exit_2(catalog):
    with pytest.raises(CommandError, match="'anthropic/claude-haiku-4-5-20251001' is not offered") as err:
        runworkflow("learn-agentic-ai", "--model", "anthropic/claude-haiku-4-5-20251001")
    assert err.value.returncode == 2 and not Run.objects.exists()


def test_validate_mode_reports_without_running_steps(catalog):
    code, out, _ = runworkflow("learn-agentic-ai", "--mode", "validate", "--json")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result["status"] == "succeeded" and result["mode"] == "validate"
    assert [a["name"] for a in result["artifacts"]] == ["trace.json", "validation.json"]


def test_full_after_a_test_run_with_the_same_inputs_succeeds(catalog):
    assert runworkflow("learn-agentic-ai", "--mode", "test")[0] == 0
    code, _out, err = runworkflow("learn-agentic-ai", "--mode", "full", "--json")
    assert code == 0, err
    assert Run.objects.filter(mode=Mode.FULL, status=Status.SUCCEEDED).count() == 1


def test_cancel_of_an_unknown_or_finished_run_is_a_clear_error(catalog):
    with pytest.raises(CommandError, match="No run"):
        call_command("runworkflow", "--cancel", "not-a-uuid", stdout=StringIO())
    runworkflow("learn-agentic-ai")
    with pytest.raises(CommandError, match="already finished"):
        call_command("runworkflow", "--cancel", str(Run.objects.get().pk), stdout=StringIO())


@pytest.mark.e2e
def test_on_a_fresh_data_dir_it_succeeds_in_under_30_seconds(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENV_FILE": os.devnull,
        "DJANGO_SECRET_KEY": "fresh-clone-test",
    }
    env.pop("FIELD_ENCRYPTION_KEYS", None)
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "-v0"], ["sync_workflows"]):
        subprocess.run(manage + command, cwd=settings.BASE_DIR, env=env, check=True, capture_output=True)
    started = time.monotonic()
    done = subprocess.run(
        [*manage, "runworkflow", "learn-agentic-ai", "--mode", "test", "--json"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "succeeded"
    assert elapsed < 30, f"took {elapsed:.1f} s"  # generous: speed is a benchmark, not a timed test


def test_it_shows_the_models_text_on_stderr_as_it_streams(catalog):
    from providers import services as provider_services

    from .support.fake_llm import fake_llm

    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Stand-in", api_key="sk-cli-stream-0123456789abcdef",
            api_base=server.base_url, allow_private_network=True,
        )  # fmt: skip
        server.push(
            {},
            {
                "content": "## Outline\n\nstreamed words reach the terminal, as references/agent-loop.md says",
                "chunk_delay": 0.05,
            },
        )
        code, out, err = runworkflow("learn-agentic-ai", "--mode", "test", "--model", "openai/gpt-4o-mini", "--json")
    assert code == 0, out
    # Word by word on stderr while the call runs; stdout keeps only the result.
    assert "streamed words reach the terminal" in err
    assert "streamed words" not in out.strip().splitlines()[-1]
