"""The models an OpenAI-shaped server lists at GET {base}/models (Ollama, vLLM, LM Studio, OpenAI, DeepSeek),
for the provider form and the Providers page. The request goes through the same hardened HTTP path as every
provider call (providers.http_guard: no redirects, every connection SSRF-checked), with a short time limit."""

from __future__ import annotations

import httpx

from . import crypto, http_guard
from .models import Provider, ProviderConnection
from .ssrf import UnsafeURL, check_base_url

LISTS_MODELS: dict[str, str] = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.DEEPSEEK: "https://api.deepseek.com",
    Provider.OPENAI_COMPATIBLE: "",
}
MAX_MODELS = 200
TIMEOUT = httpx.Timeout(5.0)


def list_models(connection: ProviderConnection) -> tuple[list[str], str]:
    """(["openai_compatible/llama3.2", ...], "") or ([], why not) — never raises for a server's answer."""
    if connection.provider not in LISTS_MODELS:
        return [], ""
    base = (connection.api_base or LISTS_MODELS[connection.provider]).rstrip("/")
    if not base:
        return [], ""
    try:
        check_base_url(base, allow_private=connection.allow_private_network)
        key = crypto.decrypt(connection.encrypted_key) if connection.encrypted_key else ""
    except (UnsafeURL, crypto.SecretUnreadable) as exc:
        return [], str(exc)
    http_guard.install_httpx()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            response = client.get(f"{base}/models", headers=headers)
        response.raise_for_status()
        data = response.json().get("data", [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return [], "The server did not list its models."
    names = sorted({str(item["id"]) for item in data if isinstance(item, dict) and item.get("id")})
    return [f"{connection.provider}/{name}" for name in names[:MAX_MODELS]], ""
