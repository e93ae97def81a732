"""Request and response models live in tokenmall.api.schemas (one module per area); the route
modules and the app factory only use them.  A model defined in a route module would be easy to
miss when the API's shape is reviewed, and the OpenAPI components name models, not modules."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest
from pydantic import BaseModel

import tokenmall.api.app
import tokenmall.api.routes.orders
from tokenmall.api import schemas

ROUTE_MODULES = [
    "aftersales",
    "catalog",
    "imports",
    "keys",
    "members",
    "operations",
    "merchant_orders",
    "orders",
    "reads",
    "tenants",
    "wallet",
    "webhooks",
]


def _declared(obj: object) -> type[BaseModel] | None:
    """The model class ``obj`` is, or (``Page[OrderSummary]``, which pydantic names after the
    module that writes it) the generic model it parametrizes; None if not a model."""
    if not (inspect.isclass(obj) and issubclass(obj, BaseModel)):
        return None
    origin: type[BaseModel] | None = obj.__pydantic_generic_metadata__["origin"]
    return origin or obj


def _models_defined_in(module: ModuleType) -> list[str]:
    return [
        name
        for name, obj in vars(module).items()
        if (model := _declared(obj)) is not None and model.__module__ == module.__name__
    ]


def test_the_order_routes_define_no_model() -> None:
    assert _models_defined_in(tokenmall.api.routes.orders) == []


@pytest.mark.parametrize("name", ROUTE_MODULES)
def test_no_route_module_defines_a_model(name: str) -> None:
    module = importlib.import_module(f"tokenmall.api.routes.{name}")
    assert _models_defined_in(module) == []


def test_the_app_factory_defines_no_model() -> None:
    assert _models_defined_in(tokenmall.api.app) == []


def test_every_model_the_routes_use_comes_from_a_schema_module() -> None:
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"tokenmall.api.routes.{name}")
        for obj in vars(module).values():
            if (model := _declared(obj)) is not None:
                assert model.__module__.startswith("tokenmall.api.schemas."), (name, obj)


def test_the_former_schemas_module_names_still_import() -> None:
    for name in schemas.__all__:
        assert getattr(schemas, name) is not None
