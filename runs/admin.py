from django.contrib import admin

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
    list_display = ("user", "daily_usd", "max_active_runs")
    raw_id_fields = ("user",)
    list_select_related = ("user",)


@admin.register(LLMCacheEntry)
class LLMCacheEntryAdmin(admin.ModelAdmin):
    list_display = ("model", "key", "created_at")
    readonly_fields = ("key", "model", "response", "created_at")
    search_fields = ("key", "model")

    def has_add_permission(self, request):
        return False
