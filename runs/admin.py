from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from .models import Artifact, LLMCacheEntry, Run, UserBudget


class ArtifactInline(admin.TabularInline):
    model = Artifact
    fields = ("name", "size", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "workflow_version", "user", "mode", "status", "cost_usd", "created_at")
    list_filter = ("status", "mode")
    list_select_related = ("workflow_version__workflow", "user")
    raw_id_fields = ("user", "workflow_version")
    search_fields = ("id", "user__username", "workflow_version__workflow__slug")
    readonly_fields = [f.name for f in Run._meta.fields]
    inlines = [ArtifactInline]

    def has_add_permission(self, request):
        return False


@admin.register(UserBudget)
class UserBudgetAdmin(admin.ModelAdmin):
    """Budgets are set on the Members page, by name: a raw user id field here needed the user's number and a
    lookup operators may not open."""

    list_display = ("user", "daily_usd", "max_active_runs")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    readonly_fields = ("user",)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return redirect("settings:members")


@admin.register(LLMCacheEntry)
class LLMCacheEntryAdmin(admin.ModelAdmin):
    list_display = ("model", "key", "created_at")
    readonly_fields = ("key", "model", "response", "created_at")
    search_fields = ("key", "model")

    def has_add_permission(self, request):
        return False
