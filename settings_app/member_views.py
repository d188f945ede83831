"""The Members page (operators): people with their role, budget and active-run limit, searched by name;
one person's budget set on their own page. No raw ids anywhere: people are named by username."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from .audit import client_ip
from .members import MAX_LISTED, BudgetError, find_members, role_of, set_budget

MANAGE_BUDGETS = "runs.change_userbudget"


class BudgetForm(forms.Form):
    daily_usd = forms.DecimalField(
        label="Daily budget (USD)", required=False, min_value=0, max_digits=10, decimal_places=4,
        help_text="What this person's runs may spend per day, in flight included. Empty: no daily budget.",
    )  # fmt: skip
    max_active_runs = forms.IntegerField(
        label="Runs at once", required=False, min_value=1, max_value=1000,
        help_text=f"Queued and running at the same time. Empty: the site's limit ({settings.RUNS_ACTIVE_PER_USER}).",
    )  # fmt: skip


@permission_required(MANAGE_BUDGETS, raise_exception=True)
def members(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    people = list(find_members(query)[: MAX_LISTED + 1])
    rows = [{"user": u, "role": role_of(u), "budget": getattr(u, "budget", None)} for u in people[:MAX_LISTED]]
    context = {"rows": rows, "q": query, "more": len(people) > MAX_LISTED, "site_limit": settings.RUNS_ACTIVE_PER_USER}
    return render(request, "settings_app/members.html", context)


@permission_required(MANAGE_BUDGETS, raise_exception=True)
def member(request: HttpRequest, username: str) -> HttpResponse:
    person = get_object_or_404(get_user_model().objects.select_related("budget"), username=username, is_active=True)
    budget = getattr(person, "budget", None)
    initial = {"daily_usd": budget.daily_usd, "max_active_runs": budget.max_active_runs} if budget else {}
    form = BudgetForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            set_budget(member=person, actor=request.user, ip=client_ip(request), **form.cleaned_data)
        except BudgetError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Budget of {person.get_username()} saved.")
            return redirect("settings:members")
    status = 422 if request.method == "POST" else 200
    context = {"person": person, "role": role_of(person), "form": form}
    return render(request, "settings_app/member.html", context, status=status)
