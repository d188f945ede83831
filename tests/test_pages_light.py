"""The web process renders every page without importing LiteLLM (nor rendering a spec's prompts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.urls import reverse

from providers import services as provider_services
from runs import estimates, pipeline, services
from runs.models import Mode, Status
from settings_app.roles import assign_role

from .factories import RunFactory, UserFactory
from .support.processes import ROOT, subprocess_env

# A fresh interpreter, as a gunicorn worker is: Django set up, then the pages asked for, then its modules listed.
RENDER = """
import json, sys
import django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth import get_user_model
from django.test import Client
answers = {}
for username, url, headers in json.loads(sys.argv[1]):
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    response = client.get(url, **headers)
    answers[f"{username} {url}"] = [response.status_code, response.content.decode()]
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "litellm")
print(json.dumps({"answers": answers, "litellm": loaded}))
"""


@pytest.mark.django_db(transaction=True)
def test_no_page_imports_litellm_with_a_real_provider_connected(catalog):
    student, operator = UserFactory(username="stu"), UserFactory(username="opa")
    assign_role(student, "Student")
    assign_role(operator, "Operator")
    done = services.start_run(workflow_version=catalog.latest_version, user=student, inputs={}, mode=Mode.TEST)
    pipeline.execute(done.pk)
    running = RunFactory(user=student, workflow_version=catalog.latest_version, status=Status.RUNNING)
    provider_services.save_connection(
        actor=None, ip=None, provider="openai", label="T", api_key="sk-light-0123456789abcdef"
    )
    estimates.refresh(catalog.latest_version.pk)  # what the worker does (LiteLLM is imported here, not there)
    hx = {"HTTP_HX_REQUEST": "true"}
    pages = [
        (who, url, headers)
        for who in ("stu", "opa")
        for url, headers in [
            (reverse("catalog:index"), {}),
            (reverse("catalog:index") + "?q=agent", hx),
            (reverse("catalog:detail", args=[catalog.slug]), {}),
            (reverse("runs:detail", args=[done.pk]), {}),
            (reverse("runs:detail", args=[running.pk]), {}),
            (reverse("runs:status", args=[running.pk]), hx),
            (reverse("runs:history"), {}),
            (reverse("runs:history") + "?status=succeeded", {}),
            (reverse("runs:usage"), {}),
        ]
    ]
    result = subprocess.run(
        [sys.executable, "-c", RENDER, json.dumps(pages)],
        cwd=ROOT,
        env=subprocess_env(DJANGO_SETTINGS_MODULE="config.test_settings", LOG_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert {key: status for key, (status, _) in found["answers"].items()} == {
        f"{who} {url}": 200 for who, url, _ in pages
    }
    workflow_page = found["answers"][f"stu {reverse('catalog:detail', args=[catalog.slug])}"][1]
    assert workflow_page.count("≤ $0.0") == 2  # real estimates were shown
    assert found["litellm"] == []
