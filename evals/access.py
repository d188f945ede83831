"""The one access helper for eval sets: operators (evals.view_evalset) see them all; anyone else gets a 404."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from .models import EvalBatch, EvalSet


def visible_sets(user: Any) -> QuerySet[EvalSet]:
    if not user.has_perm("evals.view_evalset"):
        return EvalSet.objects.none()
    return EvalSet.objects.select_related("workflow", "owner")


def get_set_for_user(user: Any, set_id: Any) -> EvalSet:
    try:
        return visible_sets(user).get(pk=set_id)
    except (EvalSet.DoesNotExist, ValueError, TypeError):
        raise Http404("No such eval set.") from None


def get_batch_for_user(user: Any, batch_id: Any) -> EvalBatch:
    if not user.has_perm("evals.view_evalset"):
        raise Http404("No such batch.")
    try:
        return EvalBatch.objects.select_related("eval_set__workflow", "workflow_version").get(pk=batch_id)
    except (EvalBatch.DoesNotExist, ValueError, TypeError):
        raise Http404("No such batch.") from None
