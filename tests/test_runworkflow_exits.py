"""Every exit path of `runworkflow --json`, as a script sees it: a real process, its exit code, and a last
stdout line that parses as one JSON object.

    0 succeeded · 1 failed · 2 usage error · 3 refused before running · 4 stopped at a cap · 5 cancelled
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from runs.models import Run, Status

from .support.fake_llm import fake_llm
from .support.processes import ROOT, subprocess_env, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def start(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "runworkflow", *args, "--json"],
        cwd=ROOT,
        env=subprocess_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 90) -> tuple[int, dict, str]:
    out, err = process.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    assert lines, f"no stdout; stderr: {err}"
    return process.returncode, json.loads(lines[-1]), err


def runworkflow(*args: str, **env: str) -> tuple[int, dict, str]:
    return finish(start(*args, **env))


def test_a_run_that_succeeds_exits_0_with_tokens_in_three_counts(catalog):
    code, result, err = runworkflow("learn-agentic-ai")
    assert (code, result["status"], result["exit_code"]) == (0, "succeeded", 0), err
    tokens = result["tokens"]
    assert set(tokens) == {"prompt", "completion", "total"}
    assert tokens["total"] == tokens["prompt"] + tokens["completion"] > 0


def test_a_run_that_fails_exits_1(openai):
    # A model no connection offers is refused before a run is made (exit 2, below): a run fails on the provider.
    openai.default = {"status": 401}
    code, result, err = runworkflow("learn-agentic-ai", "--model", "openai/gpt-4o-mini")
    assert (code, result["status"], result["exit_code"]) == (1, "failed", 1), err
    assert "rejected the API key" in result["reason"], result["reason"]
    assert Run.objects.get(pk=result["run_id"]).status == Status.FAILED


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "Name a workflow"),
        (("no-such-workflow",), "Unknown workflow 'no-such-workflow'"),
        (("learn-agentic-ai", "--input", "session_minutes=lots"), "'lots' is not a valid integer"),
        (("learn-agentic-ai", "--input", "colour=blue"), "Unknown input"),
        (("learn-agentic-ai", "--inputs-file", "/no/such/file.json"), "Cannot read --inputs-file"),
        (("learn-agentic-ai", "--budget-usd", "abc"), "--budget-usd takes a number"),
        (("learn-agentic-ai", "--budget-usd", "NaN"), "above zero"),
        (("learn-agentic-ai", "--model", "nonsense"), "not a model name"),
        (("learn-agentic-ai", "--model", "anthropic/claude-3-5-haiku-latest"), "is not offered for this workflow"),
        (("learn-agentic-ai", "--mode", "turbo"), "invalid choice: 'turbo'"),
        (("learn-agentic-ai", "--no-such-option"), "unrecognized arguments"),
        (("--cancel", "not-a-run"), "No run not-a-run"),
    ],
)
def test_usage_errors_exit_2_with_a_json_error(catalog, args, words):
    code, result, err = runworkflow(*args)
    assert (code, result["status"], result["exit_code"]) == (2, "error", 2), err
    assert words in result["reason"]
    assert "Traceback" not in err
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("learn-agentic-ai", "--mode", "full"), "needs a passed test run"),
        (("learn-agentic-ai", "--budget-usd", "999"), "A budget can only be lowered"),
    ],
)
def test_refusals_before_running_exit_3(catalog, args, words):
    code, result, err = runworkflow(*args)
    assert (code, result["status"], result["exit_code"]) == (3, "refused", 3), err
    assert words in result["reason"]
    assert not Run.objects.exists()


def test_queue_with_no_cluster_gives_up_after_the_wait_and_cancels_the_run(catalog):
    started = time.monotonic()
    code, result, err = runworkflow("learn-agentic-ai", "--queue", "--queue-wait", "1")
    assert (code, result["status"]) == (3, "refused"), err
    assert "No worker took the run within 1 s" in result["reason"] and "qcluster" in result["reason"]
    assert Run.objects.get(pk=result["run_id"]).status == Status.CANCELLED
    assert time.monotonic() - started < 30


def test_cancelling_a_finished_run_is_refused_and_a_running_one_is_acknowledged(catalog):
    assert runworkflow("learn-agentic-ai")[0] == 0
    run = Run.objects.get()
    code, result, _ = runworkflow("--cancel", str(run.pk))
    assert (code, result["status"]) == (3, "refused") and "already finished" in result["reason"]
    run.pk, run.status, run.cancel_requested = None, Status.RUNNING, False
    run.save()
    code, result, _ = runworkflow("--cancel", str(run.pk))
    assert (code, result["status"], result["run_id"]) == (0, "cancel_requested", str(run.pk))


def openai_env(server) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test-" + "q" * 32, "OPENAI_API_BASE": server.base_url}


def test_a_run_stopped_at_a_cap_exits_4(catalog):
    with fake_llm("openai") as server:
        code, result, err = runworkflow("learn-agentic-ai", "--budget-usd", "0.0000001", **openai_env(server))
    assert (code, result["status"], result["exit_code"]) == (4, "stopped", 4), err
    assert result["model"] == "openai/gpt-4o-mini"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.8, 6.0], ids=["engine-notices", "call-outlasts-the-grace"])
def test_a_signal_cancels_the_run_and_exits_5_within_two_seconds(catalog, sig, delay):
    with fake_llm("openai") as server:
        server.push(*[{"delay": delay}] * 12)
        process = start("learn-agentic-ai", **openai_env(server))
        wait_for(lambda: Run.objects.filter(status=Status.RUNNING, steps_done__gte=0).exists(), 60, message="running")
        wait_for(lambda: len(server.requests) >= 2, 30, message="a step's call")  # past the connection check
        process.send_signal(sig)
        signalled = time.monotonic()
        code, result, err = finish(process, timeout=10)
        elapsed = time.monotonic() - signalled
    assert (code, result["status"], result["exit_code"]) == (5, "cancelled", 5), err
    assert elapsed < 2.0, f"took {elapsed:.1f} s: {err}"
    assert "Traceback" not in err
    assert Run.objects.get().cancel_requested


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
# From the moment manage.py runs (the interpreter needs ~0.1 s to get there; before, no Python code can answer).
@pytest.mark.parametrize("after", [0.4, 1.2, 2.5])
def test_a_signal_at_any_moment_of_start_up_ends_with_one_json_line_and_exit_5(catalog, sig, after):
    process = start("learn-agentic-ai", "--input", "topic=Signals")
    time.sleep(after)
    process.send_signal(sig)
    code, result, err = finish(process, timeout=30)
    assert "Traceback" not in err
    if code == 0:  # the run had time to finish first: nothing to interrupt
        assert result["status"] == "succeeded"
        return
    assert (code, result["status"], result["exit_code"]) == (5, "cancelled", 5), err
    made = Run.objects.filter(pk=result["run_id"]).first() if result["run_id"] else None
    assert result["run_id"] is None or made is not None
    assert Run.objects.count() == (1 if made else 0)


def test_every_json_line_has_a_run_id_null_when_no_run_was_made(catalog):
    code, result, _ = runworkflow("learn-agentic-ai", "--bogus")
    assert (code, result["exit_code"], result["run_id"]) == (2, 2, None)
    code, result, _ = runworkflow("no-such-workflow")
    assert (code, result["run_id"]) == (2, None)
