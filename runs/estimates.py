"""Cost estimates shown on a workflow's page: per mode, for each connected model, with the default inputs."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from catalog import inputs as run_inputs
from catalog.models import Skill, WorkflowVersion
from providers import pricing
from providers.crypto import SecretUnreadable
from providers.resolution import ModelNotAvailable, configured_connections, target_for
from providers.ssrf import UnsafeURL

from . import costs
from .models import Mode


def for_version(version: WorkflowVersion) -> list[dict[str, Any]]:
    """[{model, test, full}] in dollars (None when unpriced), cached for ten minutes per version."""
    key = f"estimates:{version.pk}:" + ",".join(
        f"{c.pk}:{c.updated_at.timestamp()}" for c in configured_connections().values()
    )
    found = cache.get(key)
    if found is None:
        found = _compute(version)
        cache.set(key, found, 600)
    return found


def _compute(version: WorkflowVersion) -> list[dict[str, Any]]:
    spec = version.spec
    skills = {sv.skill.name: sv for sv in version.skills.select_related("skill")}
    chosen = run_inputs.skill_input(spec["inputs"])
    defaults = run_inputs.defaults(spec["inputs"])
    if chosen:
        skill = Skill.objects.select_related("latest").filter(name=defaults.get(chosen)).first()
        if skill and skill.latest:
            skills[skill.name] = skill.latest
    rows = []
    for provider, connection in configured_connections().items():
        name = connection.default_model or f"{provider}/default"
        try:
            target = target_for(name, connection)
        except (ModelNotAvailable, SecretUnreadable, UnsafeURL):  # no estimate for it, and no error page
            continue
        price = pricing.price_of(target)
        row: dict[str, Any] = {"model": target.model}
        for mode in (Mode.TEST, Mode.FULL):
            row[mode] = costs.upper_estimate(target, price, spec, mode, defaults, skills)
        rows.append(row)
    return rows
