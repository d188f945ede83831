"""Money, in one place: prices, upper estimates, budgets with reservations, and the one formatter.

Everything that decides or shows dollars asks this module (docs/runs.md, "Costs and budgets"):

- `price_of(target)`: an operator's ModelPrice first, then LiteLLM's bundled map; None means unpriced.
- `upper_estimate(...)` / `worst_next_call(...)`: what a run (its steps and its quality judge), or its next
  call, could cost at most.
- `reserve(run, connection_id, estimate)`: the atomic budget check that also holds the estimate until
  `settle(run)` replaces it with what the run really spent, however the run ends.
- `run_budget(run, caps)`: what a run may still spend, after what its resume chain already spent.
- `format_usd(value)`: how every page, the CLI and the trace write a dollar amount; `describe_cost` and
  `run_cost` put it in the one vocabulary (free / a priced amount / unpriced / not run).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from providers import llm
from providers.models import ModelPrice, ProviderConnection
from providers.resolution import Target

from .models import Mode, Run, UserBudget

if TYPE_CHECKING:
    from catalog.models import WorkflowVersion

SMALLEST = Decimal("0.0001")
CENT_FRACTION = Decimal("0.00000001")
MILLION = Decimal(1_000_000)


# -- display -----------------------------------------------------------------------------------------------
def format_usd(value: Decimal | float | int | None, *, unpriced: bool = False, offline: bool = False) -> str:
    """ "$0.0052", "< $0.0001", "$12.50", "unpriced", "free" — never "$0.000000"."""
    if offline:
        return FREE
    if value is None or (unpriced and not value):
        return "unpriced"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    if abs(amount) < SMALLEST:
        return "< $0.0001"
    if abs(amount) >= 1:
        return f"${amount.quantize(Decimal('0.01'), ROUND_HALF_UP)}"
    # Four significant decimals are enough to tell small runs apart without a wall of zeros.
    return f"${amount.quantize(SMALLEST, ROUND_HALF_UP).normalize():f}"


# The one vocabulary for what something cost, on every page: a dollar amount when priced, else one of these.
FREE, UNPRICED, NOT_RUN = "free", "unpriced", "not run"
NOTHING_YET = "nothing yet"  # a run still working that has not spent anything


def describe_cost(
    cost: Decimal | float | int | None, *, unpriced: bool = False, free: bool = False, ran: bool = True
) -> str:
    """ "not run" (nothing was called), "free" (the offline model, or a model priced at $0), "unpriced" (calls
    with no known price), "$0.0052", or "$0.0052 + unpriced calls"."""
    if not ran:
        return NOT_RUN
    amount = Decimal(str(cost or 0))
    if free and not amount:
        return FREE
    if unpriced and not amount:
        return UNPRICED
    text = FREE if amount == 0 else format_usd(amount)
    return f"{text} + unpriced calls" if unpriced else text


def run_cost(run: Run) -> str:
    """What a run cost, in that vocabulary (the offline model is free, not unpriced)."""
    from providers.offline import MODEL as OFFLINE_MODEL

    offline = run.model_used == OFFLINE_MODEL
    ran = bool(run.prompt_tokens or run.completion_tokens or run.cost_usd) or run.status == "succeeded"
    if not ran and not run.is_finished:
        return NOTHING_YET  # still working: not "not run"
    return describe_cost(run.cost_usd, unpriced=run.cost_unpriced and not offline, free=offline, ran=ran)


def usd_text(value: Decimal | None) -> str | None:
    """Money in the API, events and CLI output: a plain decimal string, exact, no exponent ("0", "0.00012",
    "10"), never a float (rounding) nor Decimal's own "0E-8"."""
    if value is None:
        return None
    return f"{Decimal(value).normalize():f}"


# -- prices ------------------------------------------------------------------------------------------------
def price_of(target: Target) -> llm.Price | None:
    """Per-token prices: an operator's ModelPrice first, then LiteLLM's bundled map. None: unpriced (or offline)."""
    if target.is_offline:
        return None
    own = ModelPrice.objects.filter(model=target.model).first()
    if own is not None:
        return llm.Price(own.input_per_million / MILLION, own.output_per_million / MILLION)
    return llm.map_price(target)


# -- estimates ---------------------------------------------------------------------------------------------
def tokens(
    target: Target,
    steps: list[dict[str, Any]],
    caps: dict[str, Any],
    messages_for: Callable[[dict[str, Any]], list[dict[str, Any]]],
    tool_defs_for: Callable[[dict[str, Any]], list[dict[str, Any]] | None],
) -> tuple[int, int]:
    """Upper (input, output) tokens: each step's prompt tokens (counted with LiteLLM's tokenizer for the
    model) plus the mode's max output tokens, and each allowed tool round re-sending the conversation with a
    full tool result. `messages_for` must render a step with earlier outputs at their cap."""
    from . import tools

    max_out = caps["max_output_tokens"]
    total_in = total_out = 0
    for step in steps:
        defs = tool_defs_for(step)
        prompt = llm.count_tokens(target, messages_for(step), defs)
        rounds = 1 + (caps["max_tool_calls"] if defs else 0)
        total_in += prompt * rounds + (tools.MAX_READ_CHARS // 4) * (rounds - 1) * rounds // 2
        total_out += max_out * rounds
    return total_in, total_out


def priced(price: llm.Price | None, input_tokens: int, output_tokens: int) -> Decimal | None:
    """The dollars of an upper token count at a price; None when the model is unpriced."""
    if price is None:
        return None
    return price.cost(input_tokens, output_tokens).quantize(CENT_FRACTION)


def estimate(
    target: Target,
    price: llm.Price | None,
    steps: list[dict[str, Any]],
    caps: dict[str, Any],
    messages_for: Callable[[dict[str, Any]], list[dict[str, Any]]],
    tool_defs_for: Callable[[dict[str, Any]], list[dict[str, Any]] | None],
) -> Decimal | None:
    """An upper estimate in dollars (see `tokens`). None when the model is unpriced."""
    if price is None:
        return None
    return priced(price, *tokens(target, steps, caps, messages_for, tool_defs_for))


def worst_next_call(
    target: Target, price: llm.Price, messages: list[dict[str, Any]], offer: list[dict[str, Any]] | None, max_out: int
) -> Decimal:
    return price.cost(llm.count_tokens(target, messages, offer), max_out)


def _worst_case(spec: dict[str, Any], mode: str, inputs: dict[str, Any], skills: dict[str, Any]) -> tuple[Any, ...]:
    """(steps, caps, messages_for, tool_defs_for) with every earlier step's output at the mode's output cap."""
    from . import prompts, run_tools

    caps = spec["caps"][mode]
    worst = prompts.StepOutputs({step["id"]: "word " * caps["max_output_tokens"] for step in spec["steps"]})
    ctx = prompts.context(spec, inputs, worst, skills, mode)
    return (
        spec["steps"],
        caps,
        lambda step: prompts.messages(step, ctx, skills),
        lambda step: run_tools.definitions(step["tools"], skills) if step.get("tools") else None,
    )


def judge_tokens(target: Target, spec: dict[str, Any], mode: str, inputs: dict[str, Any]) -> tuple[int, int]:
    """Upper (input, output) tokens of the quality judge's calls (runs/quality.py): one per rubric check that
    applies to these inputs, grading its step's output at the mode's output cap, answering at most
    `judge.MAX_TOKENS`. Counted at the run's model, the judge unless the spec or the operator names another."""
    from . import checks, judge

    max_out = spec["caps"][mode]["max_output_tokens"]
    worst = ("word " * max_out)[: checks.MAX_CHECKED_CHARS]
    total_in = total_out = 0
    for check in spec.get("checks") or []:
        if check["kind"] != "rubric" or not checks.applies(check, inputs):
            continue
        total_in += llm.count_tokens(target, judge.messages(check, worst), None)
        total_out += judge.MAX_TOKENS
    return total_in, total_out


def upper_estimate(
    target: Target,
    price: llm.Price | None,
    spec: dict[str, Any],
    mode: str,
    inputs: dict[str, Any],
    skills: dict[str, Any],
) -> Decimal | None:
    """What a run of a spec in a mode could cost at most: its steps (`estimate`, every earlier step's output
    counted at the mode's output cap) and its quality judge's calls (`judge_tokens`)."""
    if price is None:
        return None
    steps = estimate(target, price, *_worst_case(spec, mode, inputs, skills))
    judging = priced(price, *judge_tokens(target, spec, mode, inputs))
    return None if steps is None or judging is None else steps + judging


def upper_tokens(
    target: Target, spec: dict[str, Any], mode: str, inputs: dict[str, Any], skills: dict[str, Any]
) -> tuple[int, int]:
    """The upper tokens `upper_estimate` prices (also the stored estimates): the steps' and the judge's."""
    steps_in, steps_out = tokens(target, *_worst_case(spec, mode, inputs, skills))
    judge_in, judge_out = judge_tokens(target, spec, mode, inputs)
    return steps_in + judge_in, steps_out + judge_out


def for_version(version: WorkflowVersion) -> list[dict[str, Any]]:
    """A workflow page's estimates, priced from token counts the worker stored (runs.estimates): the web
    process never renders prompts or loads a tokenizer."""
    from .estimates import for_version as stored

    return stored(version)


# -- budgets and reservations ------------------------------------------------------------------------------
def budget_of(run: Run, caps: dict[str, Any]) -> Decimal:
    """A run's budget: the mode's cap, or less if the run was started with a lower one."""
    cap = Decimal(str(caps["budget_usd"]))
    return min(run.budget_usd, cap) if run.budget_usd is not None else cap


def run_budget(run: Run, caps: dict[str, Any]) -> Decimal:
    """What this run may still spend: its budget minus what the runs it resumes already spent."""
    return budget_of(run, caps) - run.chain_spent_usd


def chain_spent(run: Run) -> Decimal:
    """What a run and every run it resumes spent, in total: a resume carries it into its own budget."""
    return run.chain_spent_usd + run.cost_usd


def _committed(runs: QuerySet[Run]) -> Decimal:
    # A settled run counts what it spent; a run in flight counts at least the estimate it reserved.
    total = runs.aggregate(total=Sum(Greatest("cost_usd", "reserved_usd")))["total"]
    return Decimal(total or 0)


def unpriced_refusal(model: str) -> str:
    return (
        f"Refused: {model} has no known price, so the dollar budget could not hold. An operator can set its price "
        "in the admin (Providers, Model prices: per million tokens) or allow unpriced runs on its connection."
    )


def priced_fallbacks(targets: list[Target], prices: dict[str, llm.Price | None]) -> list[Target]:
    """The fallbacks a budget can hold: priced ones, and unpriced ones only on connections an operator allowed
    (a fallback must not be a way round the primary's unpriced refusal)."""
    ids = [t.connection_id for t in targets if t.connection_id]
    allowed = set(ProviderConnection.objects.filter(pk__in=ids, allow_unpriced=True).values_list("pk", flat=True))
    return [t for t in targets if prices.get(t.model) is not None or t.connection_id in allowed]


def reserve(run: Run, connection_id: int | None, estimate: Decimal | None) -> str | None:
    """Check the user's daily and the connection's monthly budget against what is spent plus what runs still
    in flight have reserved, and hold this run's estimate — atomically, so runs validating at the same moment
    cannot all pass on the same money. Returns why the run is refused, or None.

    The write lock is the budget rows' (select_for_update on PostgreSQL; SQLite's IMMEDIATE transactions
    take the database write lock at BEGIN), taken in one order (`_lock_for_reservation`) that no run update
    can cross. A Validate run checks but holds nothing: it spends nothing more."""
    connection = ProviderConnection.objects.filter(pk=connection_id).first() if connection_id else None
    if estimate is None and connection is not None and not connection.allow_unpriced:
        return unpriced_refusal(run.model_used or str(connection))
    expected = estimate or Decimal(0)
    held = Decimal(0) if run.mode == Mode.VALIDATE else expected
    now = timezone.localtime()
    others = Run.objects.exclude(pk=run.pk)
    with transaction.atomic():
        budget, connection = _lock_for_reservation(run, connection)
        if budget is not None:
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            spent = _committed(others.filter(user_id=run.user_id, created_at__gte=day))
            if spent + expected > budget.daily_usd:
                return (
                    f"Refused: your daily budget is {format_usd(budget.daily_usd)}; {format_usd(spent)} is spent "
                    f"or held by runs in flight today, and this run could cost up to {format_usd(expected)}."
                )
        if connection is not None and connection.monthly_budget_usd is not None:
            month = datetime(now.year, now.month, 1, tzinfo=now.tzinfo)
            spent = _committed(others.filter(connection_id=connection.pk, created_at__gte=month))
            if spent + expected > connection.monthly_budget_usd:
                return (
                    f"Refused: the monthly budget of the {connection} connection is "
                    f"{format_usd(connection.monthly_budget_usd)}; {format_usd(spent)} is spent or held by runs "
                    f"in flight this month, and this run could cost up to {format_usd(expected)}."
                )
        # The connection is written here too, so the next reservation on it counts this one.
        Run.objects.filter(pk=run.pk).update(reserved_usd=held, connection_id=connection_id)
    run.reserved_usd = held
    return None


def _lock_for_reservation(
    run: Run, connection: ProviderConnection | None
) -> tuple[UserBudget | None, ProviderConnection | None]:
    """The locks of a reservation, always in this order: the run's own row first (every other statement that
    touches a run row takes no lock after it), then the user's budget, then the connection, as a no-key lock.

    A no-key lock leaves the connection row's key alone: a run update that writes `connection_id` takes
    PostgreSQL's KEY SHARE lock on it through the foreign key, which a plain FOR UPDATE would block — and a
    run update blocked behind a reservation, while the host's heartbeat statement held rows the reservation
    needed, was a deadlock (issue 21: 8 of a burst of validations failed)."""
    list(Run.objects.select_for_update().filter(pk=run.pk).values_list("pk", flat=True))
    budget = UserBudget.objects.select_for_update().filter(user_id=run.user_id).first()
    if connection is not None:
        connection = ProviderConnection.objects.select_for_update(no_key=True).get(pk=connection.pk)
    return budget, connection


def settle(run: Run | Any) -> None:
    """Release a run's reservation: from now on it counts what it really spent. Safe to call twice."""
    run_id = run.pk if isinstance(run, Run) else run
    Run.objects.filter(pk=run_id).update(reserved_usd=0)
    if isinstance(run, Run):
        run.reserved_usd = Decimal(0)
