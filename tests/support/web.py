"""A logged-in HTTP session against a live server, the way a browser without JavaScript would use it."""

from __future__ import annotations

import re

import httpx

_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(base_url: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10)
    page = client.get("/login/")
    response = client.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf_token(page.text), "next": "/"},
    )
    assert response.status_code == 302 and response.headers["location"] == "/", "login failed"
    return client


def submit(client: httpx.Client, workflow: str, data: dict[str, object]) -> str:
    """Post the workflow form; returns the run page's path."""
    page = client.get(f"/workflows/{workflow}/")
    response = client.post(f"/workflows/{workflow}/", data={**data, "csrfmiddlewaretoken": csrf_token(page.text)})
    assert response.status_code == 302, response.text[:500]
    return response.headers["location"]
