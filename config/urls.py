from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

admin.site.site_header = "Agentic Workflow Platform · operators"
admin.site.site_title = "Agentic Workflow Platform admin"
admin.site.index_title = "Workflows, runs, providers and people"

urlpatterns = [
    path("", include("catalog.urls")),
    path("runs/", include("runs.urls")),
    path("evals/", include("evals.urls")),
    path("settings/", include("settings_app.urls")),
    path("api/", include("api.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

handler404 = "settings_app.errors.not_found"
handler403 = "settings_app.errors.forbidden"
handler500 = "settings_app.errors.server_error"
