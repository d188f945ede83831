"""Version 1 of the HTTP API: one NinjaAPI, its authentication, error handlers and routers."""

from __future__ import annotations

from ninja import NinjaAPI, Swagger

from . import authoring_endpoints, errors, run_endpoints, workflow_endpoints
from .auth import SessionAuth, TokenAuth

api = NinjaAPI(
    title="Agentic Workflow Platform API",
    version="1",
    description=(
        "Start governed workflow runs and fetch their results. Authenticate with a personal access token "
        "(`Authorization: Bearer awp_…`, made on /api/tokens/) or, from the browser, the session with CSRF."
    ),
    urls_namespace="api-v1",
    auth=[TokenAuth(), SessionAuth()],
    # No deep links: they put a link inside each endpoint's button (axe: nested-interactive); templates/ninja.
    docs=Swagger(settings={"persistAuthorization": False, "deepLinking": False}),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
errors.install(api)
api.add_router("", workflow_endpoints.router)
api.add_router("", run_endpoints.router)
api.add_router("", authoring_endpoints.router)
