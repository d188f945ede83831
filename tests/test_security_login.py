"""Login throttling against spraying: one password tried over many usernames from one address locks the
address, while a classroom's typos behind one address and other addresses are left alone."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from .factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
ATTACKER, CLASSROOM = "203.0.113.7", "198.51.100.20"


def login(client: Client, username: str, password: str) -> int:
    return client.post(reverse("login"), {"username": username, "password": password}).status_code


def spray(client: Client, count: int, start: int = 0) -> list[int]:
    return [login(client, f"user{n}", "Summer2026!") for n in range(start, start + count)]


def test_spraying_one_password_over_many_usernames_locks_the_address(alice):
    attacker = Client(REMOTE_ADDR=ATTACKER)
    statuses = spray(attacker, settings.LOGIN_ADDRESS_FAILURE_LIMIT)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
    assert login(attacker, "alice", PASSWORD) == 429  # even a right password, from there, waits
    assert login(Client(REMOTE_ADDR="192.0.2.99"), "alice", PASSWORD) == 302  # elsewhere, alice logs in


def test_a_good_login_between_rounds_does_not_reset_the_addresss_count(alice):
    attacker = Client(REMOTE_ADDR=ATTACKER)
    assert set(spray(attacker, settings.LOGIN_ADDRESS_FAILURE_LIMIT - 1)) == {200}
    assert login(attacker, "alice", PASSWORD) == 302  # the sprayer's own real account
    attacker.logout()
    assert spray(attacker, 1, start=100) == [429]


def test_a_classroom_behind_one_address_survives_its_typos():
    students = [UserFactory(username=f"student{n}") for n in range(5)]
    room = Client(REMOTE_ADDR=CLASSROOM)
    for student in students:
        typos = [login(room, student.username, "wrong") for _ in range(settings.AXES_FAILURE_LIMIT - 2)]
        assert set(typos) == {200}
    for student in students:
        assert login(room, student.username, PASSWORD) == 302
        room.logout()
