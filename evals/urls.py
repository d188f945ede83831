from django.urls import path

from . import views

app_name = "evals"
urlpatterns = [
    path("", views.index, name="index"),
    path("<int:set_id>/", views.detail, name="detail"),
    path("batches/<int:batch_id>/", views.batch, name="batch"),
]
