from django.urls import path

from . import editor_views, views

app_name = "catalog"
urlpatterns = [
    path("", views.index, name="index"),
    path("workflows/new/", editor_views.new, name="new"),
    path("workflows/check/", editor_views.check, name="check"),
    path("workflows/<slug:slug>/", views.detail, name="detail"),
    path("workflows/<slug:slug>/edit/", editor_views.edit, name="edit"),
    path("workflows/<slug:slug>/versions/", editor_views.versions, name="versions"),
    path("workflows/<slug:slug>/diff/", editor_views.diff, name="diff"),
    path("workflows/<slug:slug>/versions/<int:number>/publish/", editor_views.publish, name="publish"),
    path("workflows/<slug:slug>/versions/<int:number>/try/", editor_views.test_draft, name="test_draft"),
    path("workflows/<slug:slug>/versions/<int:number>/rollback/", editor_views.rollback, name="rollback"),
    path("skills/", views.skill_index, name="skills"),
    path("skills/<str:name>/", views.skill_detail, name="skill"),
    path("skills/<str:library>/<str:name>/", views.skill_detail, name="library_skill"),
]
