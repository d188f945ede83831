import difflib
from pathlib import Path

import yaml
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from .models import Persona, Skill, SkillVersion, Workflow, WorkflowFileProblem, WorkflowVersion
from .services import ImportReport, import_archive, import_skills, save_skill
from .skill_archive import MAX_UPLOAD_BYTES, ArchiveError
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


class ImportLibraryForm(forms.Form):
    archive = forms.FileField(
        required=False, label="Zip of a skill library", help_text="Folders with a SKILL.md, at any depth."
    )
    folder = forms.ChoiceField(required=False, label="Or a folder on the server", choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = [str(p) for p in settings.SKILL_IMPORT_DIRS]
        folder = self.fields["folder"]
        assert isinstance(folder, forms.ChoiceField)
        folder.choices = [("", "—")] + [(p, p) for p in allowed]
        self.fields["folder"].help_text = "Folders allowed by SKILL_IMPORT_DIRS." if allowed else "None allowed."

    def clean(self):
        data = super().clean() or {}
        if bool(data.get("archive")) == bool(data.get("folder")):
            raise forms.ValidationError("Choose a zip file or a server folder (one of them).")
        archive = data.get("archive")
        if archive and archive.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The zip is larger than {MAX_UPLOAD_BYTES // 2**20} MiB.")
        return data


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ("name", "library", "license", "is_template", "updated_at")
    list_filter = ("library", "is_template")
    search_fields = ("name", "description")
    readonly_fields = ("name", "description", "source", "library", "license", "is_template", "latest")
    actions = ["reimport"]
    change_list_template = "admin/catalog/skill/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_library)
        return [path("import/", view, name="catalog_skill_import"), *super().get_urls()]

    def import_library(self, request: HttpRequest) -> HttpResponse:
        """Upload a zip of a skill library (or pick an allowed server folder) and show the import report."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportLibraryForm(request.POST or None, request.FILES or None)
        report: ImportReport | None = None
        if request.method == "POST" and form.is_valid():
            try:
                if form.cleaned_data["archive"]:
                    upload = form.cleaned_data["archive"]
                    report = import_archive(upload=upload, filename=upload.name)
                else:
                    report = import_skills(Path(form.cleaned_data["folder"]))
            except ArchiveError as exc:
                form.add_error("archive", f"The zip was refused: {exc}.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import a skill library",
            "form": form,
            "report": report,
        }
        status = 422 if request.method == "POST" and report is None else 200
        return TemplateResponse(request, "admin/catalog/skill/import.html", context, status=status)

    @admin.action(description="Re-import the selected skills from their source folders")
    def reimport(self, request, queryset):
        done, problems = 0, []
        for skill in queryset:
            try:
                save_skill(parse_skill(Path(skill.source)), library=skill.library)
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
    readonly_fields = ("skill", "content_hash", "metadata", "body", "references", "assets", "warnings", "created_at")

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
