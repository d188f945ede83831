from django import forms
from django.contrib import admin

from settings_app.audit import client_ip

from . import services
from .models import ModelPrice, ProviderConnection


class ConnectionAdminForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: leave empty to keep the stored key. It is never shown again.",
    )

    class Meta:
        model = ProviderConnection
        fields = (
            "provider",
            "label",
            "api_key",
            "api_base",
            "allow_private_network",
            "default_model",
            "enabled",
            "position",
            "requests_per_minute",
            "tokens_per_minute",
            "monthly_budget_usd",
            "allow_unpriced",
        )

    def clean(self):
        data = super().clean() or {}
        try:
            services.check_connection_settings(
                data.get("provider", ""),
                data.get("api_key", ""),
                data.get("api_base", ""),
                data.get("allow_private_network", False),
                self.instance if self.instance.pk else None,
            )
        except services.ConnectionError_ as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


OPTIONS = ("enabled", "position", "requests_per_minute", "tokens_per_minute", "monthly_budget_usd")


@admin.register(ProviderConnection)
class ProviderConnectionAdmin(admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = ("label", "provider", "masked_key", "default_model", "enabled", "status", "last_tested_at")
    list_filter = ("provider", "enabled", "status")
    readonly_fields = ("masked_key", "status", "status_message", "last_tested_at", "from_environment")

    def save_model(self, request, obj, form, change):
        """Through the same service as the settings page: a new key or base URL resets the tested status,
        and the audit event lists what changed (never the key)."""
        data = form.cleaned_data
        saved = services.save_connection(
            actor=request.user,
            ip=client_ip(request),
            provider=data["provider"],
            label=data["label"],
            api_key=data.get("api_key", ""),
            api_base=data.get("api_base", ""),
            default_model=data.get("default_model", ""),
            allow_private_network=data.get("allow_private_network", False),
            connection=ProviderConnection.objects.get(pk=obj.pk) if change else None,
            options={name: data.get(name) for name in OPTIONS if name in data},
        )
        obj.pk, obj._state.adding = saved.pk, False

    def delete_model(self, request, obj):
        services.delete_connection(obj, actor=request.user, ip=client_ip(request))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.delete_connection(obj, actor=request.user, ip=client_ip(request))


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model", "input_per_million", "output_per_million")
    search_fields = ("model",)
