"""runworkflow and the quality checks, as a script sees them: the checks in --json, and a full run on another
model than the passed test's refused with exit 3."""

from __future__ import annotations

import pytest

from .test_runworkflow_exits import finish, start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def runworkflow(*args: str) -> tuple[int, dict, str]:
    return finish(start(*args), timeout=300)  # each process imports LiteLLM: slow on a busy machine


@pytest.mark.timeout(900)  # three processes, each importing LiteLLM
def test_after_a_passed_offline_test_a_full_run_on_another_model_exits_3(catalog, openai):
    # `openai` connects the stand-in, so openai/gpt-4o-mini is offered and only the progression rule refuses it
    # (a model no connection offers is a usage error, exit 2: docs/runs.md, "runworkflow for scripts").
    code, tested, err = runworkflow("learn-agentic-ai", "--model", "offline/demo")
    assert (code, tested["status"], tested["checks_passed"]) == (0, "succeeded", True), err
    assert {c["name"] for c in tested["checks"] if c["passed"]} >= {"notes-sections", "length", "rubric"}
    code, refused, err = runworkflow("learn-agentic-ai", "--mode", "full", "--model", "openai/gpt-4o-mini")
    assert (code, refused["status"], refused["exit_code"]) == (3, "refused", 3)
    assert "passed on offline/demo only" in refused["reason"]
    assert not openai.requests, "a refused run called the provider"
    code, full, err = runworkflow("learn-agentic-ai", "--mode", "full", "--model", "offline/demo")
    assert (code, full["status"], full["unlocked_by"]) == (0, "succeeded", tested["run_id"]), err
