from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Workflow

from .models import Mode, Run, Status


class HistoryFilter(forms.Form):
    workflow = forms.ModelChoiceField(
        queryset=Workflow.objects.order_by("title"), to_field_name="slug", required=False, empty_label="Any workflow"
    )
    status = forms.ChoiceField(choices=[("", "Any status"), *Status.choices], required=False)
    mode = forms.ChoiceField(choices=[("", "Any mode"), *Mode.choices], required=False)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="Until", widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=100, label="Inputs containing", strip=True)

    def choices(self) -> list[dict[str, Any]]:
        """The select filters as plain data for the template, which writes their HTML itself: rendering
        widgets through the form renderer cost more than the rest of the page."""
        chosen = self.data if self.is_bound else {}
        return [
            {
                "name": name,
                "label": self.fields[name].label or name.title(),
                "value": chosen.get(name, ""),
                "options": options,
            }
            for name, options in (
                ("workflow", [("", "Any workflow"), *Workflow.objects.order_by("title").values_list("slug", "title")]),
                ("status", self.fields["status"].choices),  # type: ignore[attr-defined]
                ("mode", self.fields["mode"].choices),  # type: ignore[attr-defined]
            )
        ]

    def apply(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        if not self.is_bound or not self.is_valid():
            return runs
        data = self.cleaned_data
        if data["workflow"]:
            runs = runs.filter(workflow_version__workflow=data["workflow"])
        if data["status"]:
            runs = runs.filter(status=data["status"])
        if data["mode"]:
            runs = runs.filter(mode=data["mode"])
        # Ranges on created_at itself (not on its date), so the history's indexes serve them.
        if data["q"]:  # the inputs' JSON text, case-insensitively (a run's topic, its skill, a number)
            runs = runs.filter(inputs__icontains=data["q"])
        if data["since"]:
            runs = runs.filter(created_at__gte=_midnight(data["since"]))
        if data["until"]:
            runs = runs.filter(created_at__lt=_midnight(data["until"] + timedelta(days=1)))
        return runs


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
