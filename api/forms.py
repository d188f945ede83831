from __future__ import annotations

from django import forms

from .models import Scope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What it is for, e.g. “nightly report script”.")
    # Run is what a script is usually made for (start runs and read their results); Read stays one click away.
    scope = forms.ChoiceField(choices=Scope.choices, initial=Scope.RUN, widget=forms.RadioSelect)
