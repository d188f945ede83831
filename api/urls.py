from django.contrib.auth.decorators import login_not_required
from django.urls import include, path, re_path

from . import views
from .errors import json_method_not_allowed
from .v1 import api

# The API authenticates each request itself (token or session): Django's LoginRequiredMiddleware must not
# redirect it to the login page.
_patterns, _app, _namespace = api.urls
for _pattern in _patterns:
    assert _pattern.callback is not None
    _pattern.callback = login_not_required(json_method_not_allowed(_pattern.callback))

token_pages = [
    path("", views.tokens, name="list"),
    path("<int:token_id>/revoke/", views.revoke, name="revoke"),
]

urlpatterns = [
    path("v1/", (_patterns, _app, _namespace)),
    re_path(r"^v1/(?P<rest>(?s:.*))$", views.unknown_endpoint),  # any path, newlines included: JSON 404
    path("tokens/", include((token_pages, "tokens"))),
]
