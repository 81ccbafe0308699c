"""Model definitions: conf/models/<model>.yaml names the silver inputs, the mapping and the status map.

A second source for a model is one more entry under `inputs` (plus a mapping function when its shape differs).
Inputs may share a source_system when they describe the same objects (payments: Stripe's list API and its
webhooks): their rows are then one key space, the latest version of a key winning whichever input saw it.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from northstar.config import ConfKind, Identifier, Strict
from northstar.models import common, order_lines, orders, payments, refunds, shipments
from northstar.secrets import SecretReference

# The models this code knows: their conformed shape and the mappings their inputs may name.
MODULES = {
    "orders": orders,
    "order_lines": order_lines,
    "refunds": refunds,
    "payments": payments,
    "shipments": shipments,
}


class ModelInput(Strict):
    """One silver table feeding a model."""

    source: Identifier = Field(description="conf/sources/<source>.yaml")
    table: Identifier = Field(description="the source's table: silver.<source>_<table>")
    mapping: str = Field(description="the mapping function in northstar.models.<model> (MAPPINGS)")
    source_system: Identifier | None = Field(
        default=None,
        description="value of source_system (default: source); inputs sharing one share its keys",
    )
    status_map: dict[str, str] = Field(
        default_factory=dict,
        description="source status (lower case) -> accepted status (required by models with statuses)",
    )

    @field_validator("status_map")
    @classmethod
    def _lower_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().lower(): v for k, v in value.items()}

    @property
    def system(self) -> str:
        return self.source_system or self.source


class ModelSpec(Strict):
    """A conformed model and its inputs."""

    name: Identifier
    description: str = ""
    owner: str = ""
    customer_token_key: SecretReference | None = Field(
        default=None, description="secret reference of the customer-token key (env:NAME or secretsmanager:ID)"
    )
    currencies: list[str] | None = Field(default=None, description="accepted ISO 4217 codes (default: all)")
    inputs: list[ModelInput] = Field(min_length=1)

    @field_validator("currencies")
    @classmethod
    def _iso(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        value = [v.strip().upper() for v in value]
        unknown = sorted(set(value) - common.ISO_4217)
        if unknown:
            raise ValueError(f"not ISO 4217 currency codes: {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _known(self) -> ModelSpec:
        if self.name not in MODULES:
            raise ValueError(
                f"no model named {self.name!r} in northstar.models (known: {', '.join(MODULES)})"
            )
        module = MODULES[self.name]
        for n, item in enumerate(self.inputs):
            if item.mapping not in module.MAPPINGS:
                raise ValueError(
                    f"inputs.{n}.mapping: unknown mapping {item.mapping!r} for {self.name} "
                    f"(known: {', '.join(module.MAPPINGS)})"
                )
            if module.ACCEPTED_STATUSES and not item.status_map:
                raise ValueError(
                    f"inputs.{n}.status_map: {self.name} has statuses; map the source's onto "
                    f"{', '.join(module.ACCEPTED_STATUSES)}"
                )
            wrong = sorted({v for v in item.status_map.values() if v not in module.ACCEPTED_STATUSES})
            if wrong:
                raise ValueError(
                    f"inputs.{n}.status_map maps to {', '.join(wrong)}, not in the accepted statuses of "
                    f"{self.name}: {', '.join(module.ACCEPTED_STATUSES)}"
                )
        tables = [(i.source, i.table) for i in self.inputs]
        if len(tables) != len(set(tables)):
            raise ValueError("two inputs name the same source table")
        return self

    def ledger_source(self, item: ModelInput) -> str:
        """The `source` of the input's run-ledger rows (table_name: the model), which is how a run finds the
        silver versions the input's last run consumed: the input's source_system while no other input of the
        model shares it (the key every single-system input has always had), else `<source_system>:<source>.<table>`
        (one per silver table)."""
        if sum(1 for i in self.inputs if i.system == item.system) == 1:
            return item.system
        return f"{item.system}:{item.source}.{item.table}"

    @property
    def accepted_currencies(self) -> frozenset[str]:
        return frozenset(self.currencies) if self.currencies else common.ISO_4217


MODELS = ConfKind("models", ModelSpec, "model", expand_env=True, hint="; or 'all'")


def list_models() -> list[str]:
    """The names of every conformed model file (conf/models/<model>.yaml)."""
    return MODELS.names()


def load_model(name: str) -> ModelSpec:
    """conf/models/<name>.yaml (${VAR} and ${VAR:-default} expanded from the environment)."""
    return MODELS.load(name)
