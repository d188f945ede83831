from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from settings_app.audit import client_ip

from .models import AccessToken
from .tokens import revoke_token


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "scope", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    # The digest stays out of sight; nothing here is editable (revoking is the action below).
    readonly_fields = tuple(f.name for f in AccessToken._meta.fields if f.name not in ("digest", "id"))
    fields = readonly_fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are made by their owner, on their own page, and shown only to them

    def has_delete_permission(self, request: HttpRequest, obj: AccessToken | None = None) -> bool:
        return False  # revoke instead: the row and its audit trail stay

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        done = sum(revoke_token(token, actor=request.user, ip=client_ip(request)) for token in queryset)
        self.message_user(request, f"{done} token(s) revoked.", messages.SUCCESS)
