from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", include("catalog.urls")),
    path("runs/", include("runs.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

handler404 = "settings_app.views.not_found"
handler403 = "settings_app.views.forbidden"
handler500 = "settings_app.views.server_error"
