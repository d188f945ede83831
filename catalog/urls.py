from django.urls import path

from . import views

app_name = "catalog"
urlpatterns = [
    path("", views.index, name="index"),
    path("workflows/<slug:slug>/", views.detail, name="detail"),
    path("skills/", views.skill_index, name="skills"),
    path("skills/<str:name>/", views.skill_detail, name="skill"),
    path("skills/<str:library>/<str:name>/", views.skill_detail, name="library_skill"),
]
