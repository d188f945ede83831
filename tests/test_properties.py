"""Property-based tests: bad input of any shape gets a clear error, never a crash, and nothing half-written."""

from __future__ import annotations

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import inputs
from catalog.forms import InputsForm
from catalog.skills import SkillError, parse_skill
from catalog.specs import SpecError, validate_spec
from runs.models import Run

from .factories import minimal_spec
from .test_inputs_and_forms import SCHEMA

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=3000),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
odd_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=5000)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.dictionaries(st.sampled_from([*SCHEMA["properties"], "extra"]), json_values, max_size=8))
def test_run_inputs_of_any_shape_are_accepted_or_refused_by_field(values):
    try:
        clean = inputs.validate(SCHEMA, values)
    except inputs.InputError as exc:
        assert exc.errors and all(isinstance(m, str) and m for m in exc.errors.values())
    else:
        assert set(clean) <= set(SCHEMA["properties"])


@FAST
@given(
    st.dictionaries(st.sampled_from(list(SCHEMA["properties"])), odd_text | st.lists(odd_text, max_size=3), max_size=7)
)
def test_the_generated_form_never_crashes_and_its_output_is_schema_valid(data):
    form = InputsForm(SCHEMA, data)
    if form.is_valid():
        assert inputs.validate(SCHEMA, form.cleaned_inputs) == form.cleaned_inputs
    else:
        assert form.errors


@FAST
@given(st.dictionaries(st.sampled_from(list(minimal_spec())), json_values, max_size=6))
def test_a_malformed_spec_is_a_spec_error_naming_the_field(mutations):
    spec = {**minimal_spec(), **mutations}
    try:
        validate_spec(spec, "x.yaml")
    except SpecError as exc:
        assert str(exc).startswith("x.yaml: ")


@FAST
@given(st.binary(max_size=3000) | odd_text.map(str.encode))
def test_any_skill_md_is_parsed_or_refused_with_its_file_named(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("skill")
    (folder / "SKILL.md").write_bytes(content)
    try:
        skill = parse_skill(folder)
    except SkillError as exc:
        assert str(folder / "SKILL.md") in str(exc)
    else:
        assert skill.name and skill.description


@pytest.mark.django_db
@FAST
@given(
    topic=odd_text,
    level=st.text(max_size=30),
    minutes=st.text(max_size=20),
    focus=st.lists(st.text(max_size=20), max_size=4),
    mode=st.sampled_from(["validate", "test", "full", "bogus", ""]),
)
def test_the_workflow_form_answers_any_post_without_an_error_page(
    alice_client, catalog, topic, level, minutes, focus, mode
):
    before = Run.objects.count()
    data = {"topic": topic, "level": level, "session_minutes": minutes, "focus": focus, "mode": mode}
    response = alice_client.post(reverse("catalog:detail", args=[catalog.slug]), data)
    assert response.status_code in (302, 422)
    assert Run.objects.count() == before + (1 if response.status_code == 302 else 0)
