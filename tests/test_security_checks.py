"""A wrong FIELD_ENCRYPTION_KEYS is reported at start: by the system check every command runs (`check`,
`migrate`, `qcluster`) and on the operator's provider page, naming the connections it affects."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Permission
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from providers import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def saved_connections():
    """Two connections whose keys were saved under the configured encryption key."""
    return [
        services.save_connection(actor=None, ip=None, provider=p, label=label, api_key=f"sk-{p}-0123456789abcdefghij")
        for p, label in (("openai", "Team OpenAI"), ("deepseek", "Course DeepSeek"))
    ]


def test_check_names_every_connection_whose_key_the_configured_keys_cannot_decrypt(saved_connections, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the attack: keys swapped or lost
    err = StringIO()
    call_command("check", stderr=err)
    assert "settings_app.W001" in err.getvalue()
    assert "“Team OpenAI”" in err.getvalue() and "“Course DeepSeek”" in err.getvalue()
    with pytest.raises(SystemCheckError, match="Team OpenAI"):
        call_command("check", "--fail-level", "WARNING", stderr=StringIO())


def test_check_is_quiet_when_every_stored_key_decrypts(saved_connections, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    assert [m for m in run_checks() if m.id == "settings_app.W001"] == []


def test_the_operator_page_says_which_keys_cannot_be_decrypted(saved_connections, settings, client, alice):
    alice.user_permissions.add(Permission.objects.get(codename="change_providerconnection"))
    client.force_login(alice)
    url = reverse("settings:providers")
    assert 'id="unreadable-keys"' not in client.get(url).content.decode()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    page = client.get(url).content.decode()
    assert 'id="unreadable-keys"' in page and "Team OpenAI" in page.split('id="unreadable-keys"')[1].split("</div>")[0]
