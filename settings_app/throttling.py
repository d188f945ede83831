"""Login throttling policy on top of django-axes (AXES_HANDLER).

Two limits, counted over the cool-off window:
- AXES_FAILURE_LIMIT failures for one username from one address lock that pair (guessing one password);
- LOGIN_ADDRESS_FAILURE_LIMIT failures from one address, whatever the usernames, lock the address
  (spraying one password over many accounts). Set higher, so a classroom behind one NAT address survives
  its students' typos.
A good login clears only its own username's failures, never the address's count: otherwise a sprayer
with one real account could log in between rounds to start again.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Sum


class SprayAwareHandler(AxesDatabaseHandler):
    """Needs AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"], in that order."""

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        pair, address = (
            qs.aggregate(n=Sum("failures_since_start"))["n"] or 0 for qs in self.get_user_attempts(request, credentials)
        )
        # axes compares one count with one limit, so the address's count is scaled to the pair's limit.
        return max(pair, address * settings.AXES_FAILURE_LIMIT // settings.LOGIN_ADDRESS_FAILURE_LIMIT)

    def reset_user_attempts(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        pair = self.filter_user_attempts(request, credentials)[0]
        count, _ = pair.delete()
        return count
