"""The page where a user makes and revokes their own API tokens, and the API's JSON 404."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from settings_app.audit import client_ip

from .forms import TokenForm
from .tokens import TooManyTokens, create_token, get_token_for_user, revoke_token, tokens_of


def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = create_token(user=request.user, ip=client_ip(request), **form.cleaned_data)
        except TooManyTokens as exc:
            form.add_error(None, str(exc))
        else:
            form = TokenForm()
    context = {"form": form, "tokens": tokens_of(request.user), "created": created}
    status = 422 if request.method == "POST" and created is None else 200
    response = render(request, "api/tokens.html", context, status=status)
    if created:
        response["Cache-Control"] = "no-store"  # the secret is on this page once: keep it out of caches
    return response


@require_POST
def revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_token_for_user(request.user, token_id)
    if revoke_token(token, actor=request.user, ip=client_ip(request)):
        messages.success(request, f"Token “{token.name}” is revoked: it no longer works.")
    return redirect("tokens:list")


@csrf_exempt  # it changes nothing, and a script's POST to a wrong path must read JSON, not the CSRF page
@login_not_required
def unknown_endpoint(request: HttpRequest, rest: str = "") -> JsonResponse:
    message = "There is no such API endpoint."
    if rest.endswith("/"):
        message += " API paths have no trailing slash: /api/v1/" + rest.rstrip("/")
    return JsonResponse({"code": "not_found", "message": message}, status=404)
