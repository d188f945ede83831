"""Cost estimates shown on a workflow's page: per mode, for each connected model, with the default inputs.

Counting a prompt's tokens needs LiteLLM's tokenizer and the spec's prompts rendered, which the web process
never does (issue 10, 12, 16): `refresh` runs on the worker and stores the upper token counts per
(workflow version, model, skill basis) in CostEstimate; `for_version` (the page) only reads those rows and
prices them, asking the worker for any that are missing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction

from catalog import inputs as run_inputs
from catalog.access import skill_by_ref
from catalog.models import SkillVersion, WorkflowVersion
from providers import llm  # imports LiteLLM only when a call or a count needs it (never on the web)
from providers.crypto import SecretUnreadable
from providers.models import ModelPrice, ProviderConnection
from providers.resolution import ModelNotAvailable, configured_connections, target_for
from providers.ssrf import UnsafeURL

from . import money
from .models import CostEstimate, Mode

MILLION = Decimal(1_000_000)
ASK_AGAIN_SECONDS = 60  # a page asks the worker at most this often per version while a count is missing


def _requested(connection: ProviderConnection) -> str:
    return connection.default_model or f"{connection.provider}/default"


def _chosen_skill(version: WorkflowVersion) -> SkillVersion | None:
    """The latest version of the skill a template workflow's default inputs choose, if any."""
    name = run_inputs.skill_input(version.spec["inputs"])
    if not name:
        return None
    found = skill_by_ref(run_inputs.defaults(version.spec["inputs"]).get(name))
    return found.latest if found else None


def _basis(chosen: SkillVersion | None) -> str:
    return f"skill-version:{chosen.pk}" if chosen else ""


def _cost(per_input: Decimal | None, per_output: Decimal | None, tokens_in: int, tokens_out: int) -> Decimal | None:
    price = llm.Price(per_input, per_output) if per_input is not None and per_output is not None else None
    return money.priced(price, tokens_in, tokens_out)


def for_version(version: WorkflowVersion) -> list[dict[str, Any]]:
    """[{model, test, full, pending}] in dollars (None when unpriced), from the counts the worker stored, in
    four queries at most. A model without a count yet is `pending`, and the worker is asked to count it."""
    connections = configured_connections()
    if not connections:
        return []
    requested = [_requested(c) for c in connections.values()]
    basis = _basis(_chosen_skill(version))
    found = {
        e.requested: e
        for e in CostEstimate.objects.filter(workflow_version=version, basis=basis, requested__in=requested)
    }
    own_prices = {p.model: p for p in ModelPrice.objects.filter(model__in=[e.model for e in found.values() if e.model])}
    rows: list[dict[str, Any]] = []
    for name in requested:
        estimate = found.get(name)
        if estimate is None:
            rows.append({"model": name, "test": None, "full": None, "pending": True})
            continue
        if not estimate.model:  # the worker could not resolve this model: no estimate, and no error page
            continue
        own = own_prices.get(estimate.model)
        per_in, per_out = (
            (own.input_per_million / MILLION, own.output_per_million / MILLION)
            if own
            else (estimate.map_input_per_token, estimate.map_output_per_token)
        )
        rows.append(
            {
                "model": estimate.model,
                "test": _cost(per_in, per_out, estimate.test_input_tokens, estimate.test_output_tokens),
                "full": _cost(per_in, per_out, estimate.full_input_tokens, estimate.full_output_tokens),
                "pending": False,
            }
        )
    if any(row["pending"] for row in rows):
        ask_worker(version.pk)
    return rows


def ask_worker(version_id: int) -> None:
    """Queue `refresh` for a version (after the transaction commits), at most once a minute per process."""
    if not cache.add(f"estimates-asked:{version_id}", True, ASK_AGAIN_SECONDS):
        return
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task("runs.estimates.refresh", version_id, task_name=f"estimates-{version_id}", group="estimates")
    )


def refresh(version_id: int) -> int:
    """On the worker: count the upper tokens of a version's test and full runs for every connected model, with
    the default inputs, and store them. Returns the number of rows stored."""
    version = WorkflowVersion.objects.filter(pk=version_id).first()
    if version is None:
        return 0
    spec = version.spec
    skills = {sv.skill.name: sv for sv in version.skills.select_related("skill")}
    defaults = run_inputs.defaults(spec["inputs"])
    chosen = _chosen_skill(version)
    if chosen is not None:
        skills[chosen.skill.name] = chosen
    stored = 0
    for connection in configured_connections().values():
        values: dict[str, Any] = {"model": ""}
        try:
            target = target_for(_requested(connection), connection)
        except (ModelNotAvailable, SecretUnreadable, UnsafeURL):
            pass  # stored with no model: the page shows no estimate for it
        else:
            price = None if target.is_offline else llm.map_price(target)
            test = money.upper_tokens(target, spec, Mode.TEST, defaults, skills)
            full = money.upper_tokens(target, spec, Mode.FULL, defaults, skills)
            values = {
                "model": target.model,
                "test_input_tokens": test[0],
                "test_output_tokens": test[1],
                "full_input_tokens": full[0],
                "full_output_tokens": full[1],
                "map_input_per_token": price.input_per_token if price else None,
                "map_output_per_token": price.output_per_token if price else None,
            }
        CostEstimate.objects.update_or_create(
            workflow_version=version, requested=_requested(connection), basis=_basis(chosen), defaults=values
        )
        stored += 1
    return stored
