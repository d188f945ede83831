from django.urls import path

from . import history_views, views

app_name = "runs"
urlpatterns = [
    path("", views.history, name="history"),
    path("export.csv", history_views.export_csv, name="export"),
    path("compare/", history_views.compare, name="compare"),
    path("<uuid:run_id>/", views.detail, name="detail"),
    path("<uuid:run_id>/status/", views.status, name="status"),
    path("<uuid:run_id>/cancel/", views.cancel, name="cancel"),
    path("<uuid:run_id>/test/", views.run_test, name="test"),
    path("<uuid:run_id>/full/", views.run_full, name="full"),
    path("<uuid:run_id>/resume/", views.resume, name="resume"),
    path("<uuid:run_id>/rerun/", views.rerun_view, name="rerun"),
    path("<uuid:run_id>/replay/", views.replay, name="replay"),
    path("<uuid:run_id>/artifacts.zip", views.download_all, name="download_all"),
    path("<uuid:run_id>/artifacts/<str:name>", views.download, name="download"),
    path("<uuid:run_id>/preview/<str:name>", views.preview, name="preview"),
    path("<uuid:run_id>/inputs/<str:name>", views.input_file, name="input_file"),
    path("usage/", views.usage, name="usage"),
]
