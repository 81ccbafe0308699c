"""conf/reconciliation/<name>.yaml: the tables reconciliation knows and the comparisons between them.

A table profile says once how to read a table's daily figures (date, currency, amount, key) and, for a
downstream (gold) table, which upstream table its figure is computed from; comparisons name two profiles
(with an optional filter each) and the thresholds they must meet. Errors name the file, the field and what
is allowed.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from northstar.config import ConfigError, ConfKind, EnvConfig, Strict
from northstar.lake import tables

# The brief (shared/docs/brief.md): < 0.05% variance against finance totals, < 0.1% duplicate orders.
DEFAULT_VARIANCE_PCT = 0.05
DEFAULT_DUPLICATE_RATE_PCT = 0.1
MEASURES = ("count", "sum")


class Thresholds(Strict):
    variance_pct: float = Field(
        default=DEFAULT_VARIANCE_PCT, ge=0, description="largest allowed |left - right| / |right|, in percent"
    )
    duplicate_rate_pct: float = Field(
        default=DEFAULT_DUPLICATE_RATE_PCT,
        ge=0,
        description="largest allowed share of keys with more than one row, in percent",
    )


class PostgresTotals(Strict):
    """Read this table's daily figures from a PostgreSQL source with one aggregate query (source_totals.py)."""

    source: str = Field(description="conf/sources/<source>.yaml with a jdbc section (connection, secret)")
    relation: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", description="schema.table"
    )


class TableProfile(Strict):
    """How to read one table's daily figures. Expressions are Spark SQL over the table's columns."""

    path: str | None = Field(
        default=None,
        description="location; {lake} and {quarantine} are replaced by the env's; default: the catalog's "
        "location of the table name (northstar tables)",
    )
    key: list[str] = Field(min_length=1, description="business key: counted once, checked for duplicates")
    date: str = Field(description="expression giving the business date (a date or timestamp)")
    currency: str = Field(default="'*'", description="expression giving the ISO currency code")
    amount: str = Field(description="expression giving the amount in major units (e.g. amount / 100)")
    count: str | None = Field(
        default=None,
        description="expression of a row's count for tables of totals (e.g. order_count); default: each "
        "distinct key counts once",
    )
    filter: str | None = Field(default=None, description="rows that count, e.g. status = 'succeeded'")
    union_with: list[str] = Field(
        default_factory=list,
        description="more tables of the same shape read as one with this one (e.g. one WMS table per partner)",
    )
    upstream: str | None = Field(
        default=None,
        description="the table this one's figure is computed from (gold -> silver): investigate compares them",
    )
    postgres: PostgresTotals | None = Field(
        default=None,
        description="the source side: query the PostgreSQL source instead of a lake table (expressions are "
        "then PostgreSQL SQL)",
    )
    bronze: str | None = Field(
        default=None, description="the bronze table where source changes show (schema, _rescued_data)"
    )
    ledger_source: str | None = Field(default=None, description="ops.run_ledger source of this table's runs")
    ledger_table: str | None = Field(default=None, description="ops.run_ledger table_name of its runs")

    def location(self, env: EnvConfig, name: str) -> str:
        return table_location(env, name, self.path)


def table_location(env: EnvConfig, name: str, path: str | None = None) -> str:
    """`path` with {lake} / {quarantine} filled in, else the registry's location of the table name."""
    if path:
        return path.format(lake=env.lake, quarantine=env.quarantine)
    try:
        return tables.lookup(name).path(env)
    except ConfigError as err:
        raise ConfigError(
            f"table {name} has no path: give it `path:` under tables: in conf/reconciliation ({err})"
        ) from None


class Side(Strict):
    table: str = Field(description="a name under `tables:`")
    filter: str | None = Field(default=None, description="extra rows filter for this comparison")
    date: str | None = Field(default=None, description="overrides the table's date expression here")
    currency: str | None = Field(default=None, description="overrides the table's currency expression here")

    def profile(self, tables: dict[str, TableProfile]) -> TableProfile:
        """The table's profile with this side's overrides."""
        overrides = {k: v for k, v in (("date", self.date), ("currency", self.currency)) if v is not None}
        return tables[self.table].model_copy(update=overrides)


class Comparison(Strict):
    """Two tables that must agree per day and currency; `right` is the reference (source of truth)."""

    description: str = ""
    left: Side
    right: Side
    measures: list[str] = Field(default_factory=lambda: list(MEASURES))
    variance_pct: float | None = Field(default=None, ge=0, description="overrides thresholds.variance_pct")

    @model_validator(mode="after")
    def _known_measures(self) -> Comparison:
        wrong = [m for m in self.measures if m not in MEASURES]
        if wrong:
            raise ValueError(f"measures: unknown {', '.join(wrong)}; allowed: {', '.join(MEASURES)}")
        return self


class ReconSpec(Strict):
    name: str
    description: str = ""
    thresholds: Thresholds = Thresholds()
    tables: dict[str, TableProfile] = Field(min_length=1)
    comparisons: dict[str, Comparison] = Field(default_factory=dict)
    duplicates: list[str] = Field(default_factory=list, description="tables whose duplicate rate is checked")

    @model_validator(mode="after")
    def _names_are_tables(self) -> ReconSpec:
        known = set(self.tables)
        self._comparisons_name_tables(known)
        self._duplicates_name_lake_tables(known)
        self._upstreams_are_lake_tables(known)
        return self

    def _comparisons_name_tables(self, known: set[str]) -> None:
        for name, comparison in self.comparisons.items():
            for side in ("left", "right"):
                table = getattr(comparison, side).table
                if table not in known:
                    raise ValueError(
                        f"comparisons.{name}.{side}.table: {table} is not under tables: ({', '.join(sorted(known))})"
                    )

    def _duplicates_name_lake_tables(self, known: set[str]) -> None:
        for table in self.duplicates:
            if table not in known:
                raise ValueError(f"duplicates: {table} is not under tables: ({', '.join(sorted(known))})")
            if self.tables[table].postgres is not None:
                raise ValueError(f"duplicates: {table} is a PostgreSQL source (its primary key is unique)")

    def _upstreams_are_lake_tables(self, known: set[str]) -> None:
        # `bronze:` is not checked here: investigate raises when it is not under tables:
        for name, profile in self.tables.items():
            target = profile.upstream
            if target is not None and target not in known:
                raise ValueError(f"tables.{name}.upstream: {target} is not under tables:")
            if target is not None and self.tables[target].postgres is not None:
                raise ValueError(f"tables.{name}.upstream: {target} is a PostgreSQL source, not a lake table")

    def variance_pct(self, comparison: str) -> float:
        own = self.comparisons[comparison].variance_pct
        return self.thresholds.variance_pct if own is None else own


RECONCILIATIONS = ConfKind("reconciliation", ReconSpec, "reconciliation spec", expand_env=True)


def list_recons() -> list[str]:
    """The names of every reconciliation file (conf/reconciliation/<name>.yaml)."""
    return RECONCILIATIONS.names()


def load_recon(name: str = "daily") -> ReconSpec:
    """conf/reconciliation/<name>.yaml (${VAR} expanded from the environment)."""
    return RECONCILIATIONS.load(name)
