from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render

from providers.resolution import ModelNotAvailable, model_choices
from settings_app.htmx import HtmxHttpRequest

from . import matrix, services
from .access import get_batch_for_user, get_set_for_user, visible_sets
from .forms import BatchForm, EvalSetForm

POLL_SECONDS = 2


def _may_edit(request: HtmxHttpRequest) -> None:
    if not request.user.has_perm("evals.add_evalset"):
        raise PermissionDenied("Only operators save and run eval sets.")


def index(request: HtmxHttpRequest) -> HttpResponse:
    """Every eval set, and the form that saves one."""
    if not request.user.has_perm("evals.view_evalset"):
        raise Http404("No such page.")
    form = EvalSetForm(request.POST or None, initial={"workflow": request.GET.get("workflow")})
    status = 200
    if request.method == "POST":
        _may_edit(request)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = services.save_set(
                    workflow=data["workflow"], user=request.user, name=data["name"], cases=data["cases"]
                )
            except services.EvalError as exc:
                form.add_error("cases", str(exc))
            else:
                return redirect("evals:detail", set_id=saved.pk)
        status = 422
    sets = visible_sets(request.user)
    return render(request, "evals/index.html", {"sets": sets, "form": form}, status=status)


def detail(request: HtmxHttpRequest, set_id: int) -> HttpResponse:
    """An eval set's input sets, the models to run them on, and its batches."""
    eval_set = get_set_for_user(request.user, set_id)
    version = eval_set.workflow.current_version
    assert version is not None
    form = BatchForm(model_choices(version.spec), request.POST or None)
    status = 200
    if request.method == "POST":
        _may_edit(request)
        if form.is_valid():
            try:
                batch = services.run_batch(eval_set=eval_set, user=request.user, models=form.cleaned_data["models"])
            except (services.EvalError, ModelNotAvailable) as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("evals:batch", batch_id=batch.pk)
        status = 422
    context = {
        "eval_set": eval_set,
        "cases": eval_set.cases.all(),
        "form": form,
        "batches": eval_set.batches.select_related("workflow_version")[:20],
    }
    return render(request, "evals/detail.html", context, status=status)


def batch(request: HtmxHttpRequest, batch_id: int) -> HttpResponse:
    """The matrix of a batch; while runs are left, HTMX refreshes it in place."""
    found = get_batch_for_user(request.user, batch_id)
    table = matrix.build(found)
    context = {"batch": found, "matrix": table, "poll_seconds": POLL_SECONDS}
    if request.htmx:
        response = render(request, "evals/_matrix.html", context)
        if table.finished:
            response.status_code = 286  # htmx: swap this last update, then stop polling
        return response
    return render(request, "evals/batch.html", context)
