from django import forms
from django.contrib import admin

from .models import ProviderConnection


class ConnectionForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave empty to keep the stored key. It is never shown again.",
    )

    class Meta:
        model = ProviderConnection
        fields = ("provider", "label", "api_key", "api_base", "default_model", "enabled")

    def save(self, commit=True):
        connection = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            connection.set_key(self.cleaned_data["api_key"])
        if commit:
            connection.save()
        return connection


@admin.register(ProviderConnection)
class ProviderConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ("label", "provider", "masked_key", "default_model", "enabled", "status", "last_tested_at")
    list_filter = ("provider", "enabled", "status")
    readonly_fields = ("masked_key", "status", "status_message", "last_tested_at")
