"""The provider settings page: connect, test, change and remove provider connections (operators only)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from providers import services
from providers.models import ProviderConnection

from .audit import client_ip
from .checks import unreadable_connections
from .forms import ConnectionForm
from .htmx import HtmxHttpRequest

MANAGE = "providers.change_providerconnection"


def _save(request: HtmxHttpRequest, form: ConnectionForm, connection: ProviderConnection | None) -> bool:
    if not form.is_valid():
        return False
    try:
        services.save_connection(actor=request.user, ip=client_ip(request), connection=connection, **form.cleaned_data)
    except services.ConnectionError_ as exc:
        form.add_error(None, str(exc))
        return False
    return True


@permission_required(MANAGE, raise_exception=True)
def providers(request: HtmxHttpRequest) -> HttpResponse:
    form = ConnectionForm(
        request.POST or None, initial={"provider": "offline", "label": "Offline demo", "default_model": "offline/demo"}
    )
    if request.method == "POST" and _save(request, form, None):
        messages.success(request, "Connection saved. Test it to check that it works.")
        return redirect("settings:providers")
    connections = ProviderConnection.objects.order_by("provider", "label")
    status = 422 if request.method == "POST" else 200
    context = {"form": form, "connections": connections, "unreadable": unreadable_connections()}
    return render(request, "settings_app/providers.html", context, status=status)


@permission_required(MANAGE, raise_exception=True)
def edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(ProviderConnection, pk=pk)
    initial = {
        "provider": connection.provider,
        "label": connection.label,
        "api_base": connection.api_base,
        "allow_private_network": connection.allow_private_network,
        "default_model": connection.default_model,
    }
    form = ConnectionForm(request.POST or None, initial=initial)
    if request.method == "POST" and _save(request, form, connection):
        messages.success(request, "Connection updated.")
        return redirect("settings:providers")
    status = 422 if request.method == "POST" else 200
    return render(request, "settings_app/edit.html", {"form": form, "connection": connection}, status=status)


@require_POST
@permission_required(MANAGE, raise_exception=True)
def test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(ProviderConnection, pk=pk)
    ok, message = services.test_connection(connection, actor=request.user, ip=client_ip(request))
    if request.htmx:
        return render(request, "settings_app/_connection_row.html", {"c": connection, "announce": message})
    (messages.success if ok else messages.error)(request, message)
    return redirect("settings:providers")


@require_POST
@permission_required("providers.delete_providerconnection", raise_exception=True)
def delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(ProviderConnection, pk=pk)
    services.delete_connection(connection, actor=request.user, ip=client_ip(request))
    messages.success(request, "Connection removed; its key is deleted.")
    return redirect("settings:providers")
