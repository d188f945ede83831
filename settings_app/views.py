"""The provider settings page: connect, test, change and remove provider connections (operators only)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from providers import crypto, server_models, services
from providers.models import ModelPrice, ProviderConnection
from runs import sandbox
from runs.models import Run, Status

from . import provider_rows
from .audit import client_ip
from .checks import unreadable_connections
from .forms import ConnectionForm, provider_initial
from .htmx import HtmxHttpRequest

MANAGE = "providers.change_providerconnection"
PENDING_KEY = "pending_connection_key"  # a pasted key kept (encrypted, server side) across a validation error


def _save(request: HtmxHttpRequest, form: ConnectionForm, connection: ProviderConnection | None) -> bool:
    pending = request.session.get(PENDING_KEY)
    if not form.is_valid():
        _keep_key(request, form)
        return False
    data = dict(form.cleaned_data)
    options = {"allow_unpriced": data.pop("allow_unpriced", False)}
    prices = data.pop("input_price", None), data.pop("output_price", None)
    if not data["api_key"] and pending:
        try:
            data["api_key"] = crypto.decrypt(pending["token"])
        except crypto.SecretUnreadable:
            request.session.pop(PENDING_KEY, None)
    try:
        saved = services.save_connection(
            actor=request.user, ip=client_ip(request), connection=connection, options=options, **data
        )
    except services.ConnectionError_ as exc:
        form.add_error(None, str(exc))
        _keep_key(request, form)
        return False
    if None not in prices:
        services.set_model_price(
            model=saved.default_model, input_per_million=prices[0], output_per_million=prices[1],
            actor=request.user, ip=client_ip(request),
        )  # fmt: skip
    request.session.pop(PENDING_KEY, None)
    return True


def _keep_key(request: HtmxHttpRequest, form: ConnectionForm) -> None:
    key = (form.data.get("api_key") or "").strip()
    if key:
        request.session[PENDING_KEY] = {"token": crypto.encrypt(key), "last4": key[-4:] if len(key) >= 8 else ""}


def _form_context(request: HtmxHttpRequest, form: ConnectionForm) -> dict[str, Any]:
    pending = request.session.get(PENDING_KEY) if request.method == "POST" else None
    if request.method == "GET":
        request.session.pop(PENDING_KEY, None)
    return {"form": form, "pending_last4": pending["last4"] if pending else None}


@permission_required(MANAGE, raise_exception=True)
def providers(request: HtmxHttpRequest) -> HttpResponse:
    initial = provider_initial(request.GET.get("provider", "openai_compatible"), request.GET.get("label", ""))
    form = ConnectionForm(request.POST or None, initial=initial)
    if request.method == "POST" and _save(request, form, None):
        messages.success(request, "Connection saved. Test it to check that it works.")
        return redirect("settings:providers")
    context = {**_form_context(request, form), "form_url": request.path}
    if request.htmx and request.method == "GET":  # the provider changed: its label, hint and models
        return render(request, "settings_app/_connection_form.html", {**context, "submit": "Save connection"})
    connections = provider_rows.all_rows()
    status = 422 if request.method == "POST" else 200
    context = {
        **context,
        "connections": connections,
        "unreadable": unreadable_connections(),
        "sandbox_problem": sandbox.unavailable(),
    }
    return render(request, "settings_app/providers.html", context, status=status)


@permission_required(MANAGE, raise_exception=True)
def edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(ProviderConnection, pk=pk)
    initial = {
        "provider": connection.provider,
        "label": connection.label,
        "api_base": connection.api_base,
        "allow_private_network": connection.allow_private_network,
        "allow_unpriced": connection.allow_unpriced,
        "default_model": connection.default_model,
    }
    price = ModelPrice.objects.filter(model=connection.default_model).first()
    if price is not None:
        initial.update(input_price=price.input_per_million, output_price=price.output_per_million)
    if request.GET.get("provider"):
        initial.update(provider_initial(request.GET["provider"], request.GET.get("label", connection.label)))
    form = ConnectionForm(request.POST or None, initial=initial)
    if request.method == "GET" and form.chosen == connection.provider:  # what the server really serves first
        listed = server_models.list_models(connection)[0]
        form.suggestions = listed + [m for m in form.suggestions if m not in listed]
    if request.method == "POST" and _save(request, form, connection):
        messages.success(request, "Connection updated.")
        return redirect("settings:providers")
    context = {**_form_context(request, form), "connection": connection, "form_url": request.path}
    if request.htmx and request.method == "GET":
        return render(request, "settings_app/_connection_form.html", {**context, "submit": "Save changes"})
    status = 422 if request.method == "POST" else 200
    return render(request, "settings_app/edit.html", context, status=status)


@require_POST
@permission_required(MANAGE, raise_exception=True)
def test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(ProviderConnection, pk=pk)
    ok, message = services.test_connection(connection, actor=request.user, ip=client_ip(request))
    models = server_models.list_models(connection)[0] if ok else []
    if request.htmx:
        row = {"c": provider_rows.one(connection, models=models), "announce": message}
        return render(request, "settings_app/_connection_row.html", row)
    if models:
        message = f"{message} The server lists {len(models)} model(s): {', '.join(models[:10])}."
    warn = ok and bool(services.refusal_warning(connection))
    (messages.warning if warn else messages.success if ok else messages.error)(request, message)
    return redirect("settings:providers")


@permission_required("providers.delete_providerconnection", raise_exception=True)
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation and says what will happen; POST removes."""
    connection = get_object_or_404(ProviderConnection, pk=pk)
    if request.method == "POST":
        services.delete_connection(connection, actor=request.user, ip=client_ip(request))
        messages.success(request, f"Connection “{connection.label}” removed; its key is deleted.")
        return redirect("settings:providers")
    runs = Run.objects.filter(connection=connection)
    context = {
        "connection": connection,
        "runs_total": runs.count(),
        "runs_active": runs.filter(status__in=(Status.QUEUED, Status.RUNNING)).count(),
    }
    return render(request, "settings_app/delete.html", context)
