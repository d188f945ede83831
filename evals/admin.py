from django.contrib import admin

from .models import EvalBatch, EvalSet


@admin.register(EvalSet)
class EvalSetAdmin(admin.ModelAdmin):
    list_display = ("name", "workflow", "owner", "updated_at")
    list_select_related = ("workflow", "owner")
    raw_id_fields = ("owner",)


@admin.register(EvalBatch)
class EvalBatchAdmin(admin.ModelAdmin):
    list_display = ("eval_set", "workflow_version", "user", "created_at")
    list_select_related = ("eval_set__workflow", "workflow_version", "user")
    raw_id_fields = ("user",)
    readonly_fields = ("eval_set", "workflow_version", "user", "model_names")
