from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_name", "action", "target_label", "ip_address")
    list_filter = ("action", "target_type")
    search_fields = ("actor_name", "target_label", "target_id")
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AccessibleUserAdmin(UserAdmin):
    """Django's user admin, with what axe asks of it: the two-box group and permission pickers put an ARIA label
    on a plain <span> (aria-prohibited-attr) and the split date-and-time fields have no labels, so groups and
    permissions are plain labelled multiple selects and the two dates are read-only (nobody edits them)."""

    filter_horizontal = ()
    readonly_fields = ("last_login", "date_joined")


User = get_user_model()
admin.site.unregister(User)
admin.site.register(User, AccessibleUserAdmin)
