"""Operators may cancel and resume a student's run (decided: the run and its cost stay the student's); the
audit log and the run page say who did it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from runs.models import Mode, Run, Status
from settings_app.models import AuditEvent
from settings_app.roles import OPERATOR, assign_role

from .factories import UserFactory

pytestmark = pytest.mark.django_db


def test_an_operator_cancelling_or_resuming_a_students_run_is_audited_and_shown(alice, catalog):
    olga = UserFactory(username="olga")
    assign_role(olga, OPERATOR)
    operator = Client()
    operator.force_login(olga)
    queued = Run.objects.create(
        user=alice, workflow_version=catalog.current_version, mode=Mode.TEST, status=Status.QUEUED, inputs={}
    )
    assert operator.post(reverse("runs:cancel", args=[queued.pk])).status_code == 302
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    response = operator.post(reverse("runs:resume", args=[queued.pk]))
    assert response.status_code == 302, response.content[:500]
    resumed = Run.objects.exclude(pk=queued.pk).get()
    assert resumed.user == alice  # the student's run, on the student's budget, as the decision says
    events = list(AuditEvent.objects.filter(target_type="runs.Run").order_by("at", "pk"))
    assert [(e.actor_name, e.detail["did"], e.detail["owner"]) for e in events] == [
        ("olga", "cancelled", "alice"),
        ("olga", "resumed", "alice"),
    ]
    assert events[1].detail["new_run"] == str(resumed.pk) and events[0].ip_address == "127.0.0.1"
    student = Client()
    student.force_login(alice)
    cancelled_page = student.get(reverse("runs:detail", args=[queued.pk])).content.decode()
    assert "Cancelled by olga, not its owner" in cancelled_page
    resumed_page = student.get(reverse("runs:detail", args=[resumed.pk])).content.decode()
    assert "Resumed by olga for alice" in resumed_page and "the cost counts as alice" in resumed_page


def test_a_student_acting_on_their_own_run_leaves_no_on_behalf_note(alice_client, alice, catalog):
    run = Run.objects.create(
        user=alice, workflow_version=catalog.current_version, mode=Mode.TEST, status=Status.QUEUED, inputs={}
    )
    alice_client.post(reverse("runs:cancel", args=[run.pk]))
    assert not AuditEvent.objects.filter(target_type="runs.Run").exists()
    assert "not its owner" not in alice_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
