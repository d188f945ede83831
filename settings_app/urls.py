from django.urls import path

from . import member_views, views

app_name = "settings"
urlpatterns = [
    path("providers/", views.providers, name="providers"),
    path("providers/<int:pk>/", views.edit, name="edit"),
    path("providers/<int:pk>/test/", views.test, name="test"),
    path("providers/<int:pk>/delete/", views.delete, name="delete"),
    path("members/", member_views.members, name="members"),
    path("members/<str:username>/", member_views.member, name="member"),
]
