from django.contrib import admin
from django.utils.html import format_html

from .models import Skill, SkillVersion, Workflow, WorkflowVersion


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ("number", "version", "spec_hash", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "enabled", "version_link", "updated_at")
    list_filter = ("enabled",)
    list_editable = ("enabled",)
    search_fields = ("title", "slug", "summary")
    list_select_related = ("latest_version",)
    readonly_fields = ("slug", "title", "summary", "personas", "tags", "source", "latest_version")
    inlines = [WorkflowVersionInline]

    @admin.display(description="Latest version")
    def version_link(self, obj: Workflow) -> str:
        v = obj.latest_version
        return format_html("#{} ({})", v.number, v.version) if v else "—"


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    list_display = ("workflow", "number", "version", "created_at")
    list_select_related = ("workflow",)
    readonly_fields = ("workflow", "number", "version", "spec", "spec_hash", "skills", "created_at")

    def has_add_permission(self, request):  # versions are immutable: made only by sync_workflows
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("name", "description", "source", "latest")


@admin.register(SkillVersion)
class SkillVersionAdmin(admin.ModelAdmin):
    list_display = ("skill", "content_hash", "created_at")
    list_select_related = ("skill",)
    readonly_fields = ("skill", "content_hash", "metadata", "body", "references", "created_at")

    def has_add_permission(self, request):
        return False
