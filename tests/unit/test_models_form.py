"""The marketing models' form without a browser: every parameter's field reads back as the
service's input, and whatever is typed is either refused by the page (a message) or handed to
the service, which accepts it or refuses it with its own ``invalid_parameter`` (never a crash).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmall.domain.marketing import MODELS, ORDER, ModelSet
from tokenmall.errors import InvalidParameter
from tokenmall.web.base import FormError
from tokenmall.web.marketing import PARAM_HINTS, _params, _typed

OVERRIDE = "test"


def _form_values(name: str, shown: dict[str, str]) -> dict[str, Any]:
    values = {}
    for param in _params(name, None):
        value = _typed(param, shown[param.name], param.name)
        if value is not None:
            values[param.name] = value
    return values


@pytest.mark.parametrize("name", ORDER)
def test_the_defaults_shown_read_back_as_the_defaults(name: str) -> None:
    shown = {p.name: p.value for p in _params(name, None)}
    parsed = ModelSet.from_config({name: _form_values(name, shown)}, compliance_override=OVERRIDE)
    (model,) = parsed.models
    assert model.params == MODELS[name].params_schema()


def test_every_parameter_has_a_hint() -> None:
    names = {f for m in MODELS.values() for f in m.params_schema.model_fields}
    assert names == set(PARAM_HINTS)


@pytest.mark.parametrize(
    ("name", "param", "typed", "expected"),
    [
        ("distribution", "ratios", "0.08，0.02", ("0.08", "0.02")),  # noqa: RUF001
        ("distribution", "freeze_days", " 7 ", 7),
        ("refer3", "products", "p1, p2", frozenset({"p1", "p2"})),
        ("queue_free", "money_max", "", None),
        ("queue_free", "money_max", "88.50", "88.50"),
    ],
)
def test_a_typed_value_reaches_the_service_as_meant(
    name: str, param: str, typed: str, expected: Any
) -> None:
    shown = {p.name: p.value for p in _params(name, None)}
    shown[param] = typed
    parsed = ModelSet.from_config({name: _form_values(name, shown)}, compliance_override=OVERRIDE)
    got = getattr(parsed.models[0].params, param)
    if isinstance(got, tuple):
        got = tuple(str(v) for v in got)
    elif got is not None and not isinstance(got, int | frozenset):
        got = str(got)
    assert got == expected


@given(
    name=st.sampled_from(ORDER),
    data=st.data(),
    typed=st.text(max_size=60)
    | st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,9})?(, ?[0-9.]{1,8})*", fullmatch=True),
)
def test_whatever_is_typed_is_refused_cleanly_or_validated_by_the_service(
    name: str, data: st.DataObject, typed: str
) -> None:
    params = _params(name, None)
    target = data.draw(st.sampled_from([p.name for p in params]))
    shown = {p.name: p.value for p in params}
    shown[target] = typed
    refused: Exception | None = None
    try:
        values = _form_values(name, shown)
    except FormError as exc:
        refused = exc
    if refused is not None:
        assert isinstance(refused, FormError)
        assert refused.message  # a message for the page
        return
    try:
        ModelSet.from_config({name: values}, compliance_override=OVERRIDE)
    except InvalidParameter as exc:
        refused = exc
    assert refused is None or name in str(refused)  # the service says which model
