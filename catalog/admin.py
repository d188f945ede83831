import difflib
from pathlib import Path

import yaml
from django.contrib import admin, messages
from django.utils.html import format_html

from .models import Persona, Skill, SkillVersion, Workflow, WorkflowFileProblem, WorkflowVersion
from .services import save_skill
from .skills import SkillError, parse_skill


class LabelledRowsMixin:
    """Each list-editable input gets a label naming its row ("Enabled: Learn Agentic AI"), which the
    admin's changelist leaves out (screen readers would hear only "checkbox")."""

    def get_changelist_form(self, request, **kwargs):
        base = super().get_changelist_form(request, **kwargs)  # type: ignore[misc]

        class Labelled(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                for name, field in self.fields.items():
                    field.widget.attrs["aria-label"] = f"{field.label or name}: {self.instance}"

        return Labelled


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ("number", "version", "spec_hash", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Workflow)
class WorkflowAdmin(LabelledRowsMixin, admin.ModelAdmin):
    list_display = ("title", "slug", "enabled", "version_link", "updated_at")
    list_filter = ("enabled",)
    list_editable = ("enabled",)
    search_fields = ("title", "slug", "summary")
    list_select_related = ("latest_version",)
    readonly_fields = ("slug", "title", "summary", "personas", "tags", "source", "latest_version")
    fields = ("slug", "title", "summary", "personas", "tags", "enabled", "latest_version", "pinned_version", "source")
    inlines = [WorkflowVersionInline]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "pinned_version":
            workflow_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = WorkflowVersion.objects.filter(workflow_id=workflow_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Latest version")
    def version_link(self, obj: Workflow) -> str:
        v = obj.latest_version
        return format_html("#{} ({})", v.number, v.version) if v else "—"


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    list_display = ("workflow", "number", "version", "created_at")
    list_select_related = ("workflow",)
    readonly_fields = ("workflow", "number", "version", "changes", "spec", "spec_hash", "skills", "created_at")

    @admin.display(description="Changes from the previous version")
    def changes(self, obj: WorkflowVersion) -> str:
        previous = obj.workflow.versions.filter(number__lt=obj.number).order_by("-number").first()
        if previous is None:
            return "The first version."
        diff = difflib.unified_diff(
            yaml.safe_dump(previous.spec, sort_keys=False).splitlines(),
            yaml.safe_dump(obj.spec, sort_keys=False).splitlines(),
            f"version {previous.number}",
            f"version {obj.number}",
            lineterm="",
        )
        return format_html("<pre>{}</pre>", "\n".join(diff) or "No change.")

    def has_add_permission(self, request):  # versions are immutable: made only by sync_workflows
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("name", "description", "source", "latest")
    actions = ["reimport"]

    @admin.action(description="Re-import the selected skills from their source folders")
    def reimport(self, request, queryset):
        done, problems = 0, []
        for skill in queryset:
            try:
                save_skill(parse_skill(Path(skill.source)))
                done += 1
            except (OSError, SkillError) as exc:
                problems.append(f"{skill.name}: {exc}")
        self.message_user(request, f"Re-imported {done} skill(s).")
        for problem in problems:
            self.message_user(request, problem, level=messages.WARNING)


@admin.register(SkillVersion)
class SkillVersionAdmin(admin.ModelAdmin):
    list_display = ("skill", "content_hash", "created_at")
    list_select_related = ("skill",)
    readonly_fields = ("skill", "content_hash", "metadata", "body", "references", "created_at")

    def has_add_permission(self, request):
        return False


@admin.register(Persona)
class PersonaAdmin(LabelledRowsMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "description", "position")
    list_editable = ("position",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(WorkflowFileProblem)
class WorkflowFileProblemAdmin(admin.ModelAdmin):
    """Workflow files the last sync set aside, with the reason; fix the file and run sync_workflows again."""

    list_display = ("path", "error", "seen_at")
    readonly_fields = ("path", "error", "seen_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
