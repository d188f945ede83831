from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from .models import Scope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What it is for, e.g. “nightly report script”.")
    # Run is what a script is usually made for (start runs and read their results); Read stays one click away.
    scope = forms.ChoiceField(choices=Scope.choices, initial=Scope.RUN, widget=forms.RadioSelect)
    expires_in_days = forms.TypedChoiceField(
        label="Expires",
        choices=[(7, "in 7 days"), (30, "in 30 days"), (90, "in 90 days"), (365, "in a year"), (0, "never")],
        coerce=int,
        required=False,
        empty_value=None,  # a script posting only name and scope gets the default
        initial=90,
        help_text="An expired token stops working; make a new one then.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["expires_in_days"].initial = settings.API_TOKEN_DAYS
