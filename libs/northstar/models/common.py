"""Column helpers every model mapping shares: delivered values (column or rescued), amounts, currency, UTC
times, status mapping, the keyed customer token, quarantine reasons, and latest-version classification.

All functions build Columns or return DataFrames; nothing here reads or writes a table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.bronze.transforms import LANDING_FILE, RECORD_HASH
from northstar.silver.transforms import (  # noqa: F401  (the models use silver's disposition names)
    CANDIDATE,
    DISPOSITION,
    EXACT_DUPLICATE,
    QUARANTINED,
    REASON,
    REASON_DETAIL,
    SUPERSEDED,
    tag_dispositions,
)
from northstar.transforms.pii import keyed_token  # noqa: F401  (the models' customer token)
from northstar.transforms.schema import RESCUED

AMOUNT = T.DecimalType(18, 2)
AMOUNT_SQL = "decimal(18,2)"

RAW = "_raw_record"
HELPER_COLUMNS = [REASON, REASON_DETAIL, RAW, DISPOSITION]

# Quarantine reasons of the model layer (the `reason` column of quarantine.<model>).
UNMAPPED_STATUS = "unmapped_status"
UNKNOWN_CURRENCY = "unknown_currency"
CURRENCY_MISMATCH = "currency_mismatch"
UNPARSEABLE_AMOUNT = "unparseable_amount"
INVALID_LINE_ITEM = "invalid_line_item"
UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"
MISSING_REQUIRED = "missing_required_value"

# ISO 4217 active alphabetic codes (a model's YAML may narrow this with `currencies:`).
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
    GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
    LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB
    PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW
    ZWG""".split()
)


# Stripe amounts are integers in the currency's smallest unit. Most currencies have 2 decimals; these are
# Stripe's zero-decimal currencies (an amount of 500 JPY is 500, not 5.00) and three-decimal currencies
# (Stripe's docs: "Zero-decimal currencies", "Three-decimal currencies"). Codes are upper case.
STRIPE_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
STRIPE_THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


def currency_exponent(code: Column) -> Column:
    """Decimal places of a Stripe minor-unit amount in currency `code` (upper case): 0, 2 or 3."""
    return (
        F.when(code.isin(sorted(STRIPE_ZERO_DECIMAL)), F.lit(0))
        .when(code.isin(sorted(STRIPE_THREE_DECIMAL)), F.lit(3))
        .otherwise(F.lit(2))
    )


def from_minor_units(minor: Column, code: Column) -> Column:
    """A Stripe minor-unit integer -> decimal(18,2) in major units, with the currency's exponent (JPY 500 ->
    500.00, USD 1999 -> 19.99, KWD 1230 -> 1.23). Null when it is not an integer, or would need rounding
    (a three-decimal amount not ending in 0), or does not fit: money is never rounded silently."""
    exponent = currency_exponent(code)
    divisor = F.when(exponent == 0, F.lit(1)).when(exponent == 3, F.lit(1000)).otherwise(F.lit(100))
    delivered = minor.try_cast("decimal(38,6)")
    whole = delivered.try_cast("decimal(20,0)")  # a cast that rounds: 12.5 would become 13
    whole = F.when(whole == delivered, whole)
    wide = (whole / divisor.cast("decimal(4,0)")).try_cast("decimal(38,6)")
    narrow = wide.try_cast(AMOUNT_SQL)
    return F.when(narrow == wide, narrow)


def field_type(schema: T.DataType, path: str) -> T.DataType | None:
    """The type at dotted `path` inside a struct type, or None when the path does not exist (yet)."""
    current = schema
    for part in path.split("."):
        if not isinstance(current, T.StructType) or part not in current.fieldNames():
            return None
        current = current[part].dataType
    return current


def column_or_null(frame: DataFrame, path: str, cast: str = "string") -> Column:
    """The column at `path` cast to `cast`, or a typed null when silver has no such column (drift: fields
    that appear part-way through the feed do not exist in older tables)."""
    if field_type(frame.schema, path) is None:
        return F.lit(None).cast(cast)
    return F.col(path).try_cast(cast)


def delivered_text(frame: DataFrame, path: str) -> Column:
    """The value at `path` as text, wherever silver kept it: its column, or `_rescued_data` when the value
    did not fit the column's type (bronze keeps the whole top-level value there as JSON text)."""
    candidates = []
    if field_type(frame.schema, path) is not None:
        candidates.append(F.col(path).cast("string"))
    if RESCUED in frame.columns:
        top, *rest = path.split(".")
        rescued = F.get_json_object(F.col(RESCUED), f"$.{top}")
        if rest:
            rescued = F.get_json_object(rescued, "$." + ".".join(rest))
        candidates.append(rescued)
    if not candidates:
        return F.lit(None).cast("string")
    return F.coalesce(*candidates) if len(candidates) > 1 else candidates[0]


def amount(text: Column) -> Column:
    """Text -> decimal(18,2); null when it is not a number or would need rounding (more than 2 decimals)
    or does not fit. Money is never rounded silently."""
    wide = F.trim(text).try_cast("decimal(38,6)")
    narrow = wide.try_cast(AMOUNT_SQL)
    return F.when(narrow == wide, narrow)


def unparseable(text: Column) -> Column:
    """True when a value was delivered but `amount` cannot represent it."""
    return text.isNotNull() & amount(text).isNull()


def currency_code(text: Column) -> Column:
    return F.upper(F.trim(text))


def known_currency(code: Column, currencies: Iterable[str]) -> Column:
    return code.isin(sorted(currencies))


def utc_timestamp(frame: DataFrame, name: str) -> Column:
    """A timestamp column as a UTC instant. Text is parsed as ISO-8601 (its offset honoured; text without
    an offset is UTC, the session time zone); unparseable text gives null (see `unparseable_time`)."""
    kind = field_type(frame.schema, name)
    if kind is None:
        return F.lit(None).cast("timestamp")
    if isinstance(kind, T.TimestampType):
        return F.col(name)
    return F.try_to_timestamp(F.col(name).cast("string"))


def unparseable_time(frame: DataFrame, name: str) -> Column:
    if field_type(frame.schema, name) is None:
        return F.lit(False)
    return F.col(name).isNotNull() & utc_timestamp(frame, name).isNull()


def mapped_status(raw: Column, status_map: dict[str, str]) -> Column:
    """The source's status (trimmed, lower case) looked up in the model's `status_map`; null if unmapped."""
    if not status_map:
        return F.lit(None).cast("string")
    lookup = F.create_map(*[F.lit(x) for pair in sorted(status_map.items()) for x in pair])
    return lookup[F.lower(F.trim(raw))]


def status_check(status: Column, source_status: Column, model: str) -> tuple[Column, str, Column]:
    """The check (failed, reason, detail) for a delivered status the model's status_map does not name."""
    return (
        status.isNull(),
        UNMAPPED_STATUS,
        F.concat(
            F.lit("status '"),
            F.coalesce(source_status, F.lit("<null>")),
            F.lit(f"' is not in status_map of conf/models/{model}.yaml; add it, then --full-refresh"),
        ),
    )


def currency_check(currency: Column, currencies: Iterable[str]) -> tuple[Column, str, Column]:
    """The check (failed, reason, detail) for a missing or unknown currency code."""
    return (
        currency.isNull() | ~known_currency(currency, currencies),
        UNKNOWN_CURRENCY,
        F.concat(
            F.lit("currency '"),
            F.coalesce(currency, F.lit("<null>")),
            F.lit("' is not an accepted ISO 4217 code"),
        ),
    )


def first_problem(checks: list[tuple[Column, str, Column | str]]) -> tuple[Column, Column]:
    """(reason, detail) of the first check that fails, null when all pass."""
    reason = F.lit(None).cast("string")
    detail = F.lit(None).cast("string")
    for check, code, message in reversed(checks):
        failed = F.coalesce(check, F.lit(False))
        reason = F.when(failed, F.lit(code)).otherwise(reason)
        detail = F.when(failed, F.lit(message) if isinstance(message, str) else message).otherwise(detail)
    return reason, detail


def names_of(flags: list[tuple[str, Column]]) -> Column:
    """Comma-separated names whose flag is true (for a reason's detail)."""
    return F.concat_ws(", ", *[F.when(F.coalesce(flag, F.lit(False)), F.lit(name)) for name, flag in flags])


def lineage(frame: DataFrame, source_table: str) -> dict[str, Column]:
    """Lineage every conformed row carries: the silver table, the silver version's record hash (also the
    tie-break of the ordering) and the landing file it first came in."""
    return {
        "_source_table": F.lit(source_table),
        RECORD_HASH: F.col(RECORD_HASH),
        LANDING_FILE: column_or_null(frame, LANDING_FILE),
    }


def conformed_select(frame: DataFrame, columns: dict[str, Column]) -> DataFrame:
    """Select `columns` (name -> expression over `frame`) plus the runner's raw record when present.

    Computed under temporary names first: Spark resolves a bare name like `status` to an alias of the same
    select list (lateral column aliases), so `status` mapped from the input's `status` could be mapped twice.
    """
    temporary = [expr.alias(f"__conformed_{name}") for name, expr in columns.items()]
    if RAW in frame.columns:
        temporary.append(F.col(RAW))
    renamed = [F.col(f"__conformed_{name}").alias(name) for name in columns]
    return frame.select(*temporary).select(*renamed, *([F.col(RAW)] if RAW in frame.columns else []))


def without_pii(frame: DataFrame, pii: Iterable[str]) -> list[Column]:
    """The frame's columns with the source's PII removed (dot paths for nested fields): what a quarantine
    row may show."""
    columns = {c: F.col(f"`{c}`") for c in frame.columns}
    for path in sorted(_whole_structs(frame.schema, pii)):
        top, *rest = path.split(".")
        if field_type(frame.schema, path) is None or top not in columns:
            continue
        if not rest:
            del columns[top]
        else:
            columns[top] = _drop_nested(columns[top], rest[:-1], rest[-1])
    return [column.alias(name) for name, column in columns.items()]


def _whole_structs(schema: T.StructType, pii: Iterable[str]) -> set[str]:
    """The PII paths with every struct whose fields are all PII named as the struct itself (Spark cannot drop
    every field of a struct: `billing_details.{name,email}` of a struct holding only those becomes
    `billing_details`)."""
    paths = {p for p in pii if field_type(schema, p) is not None}
    while True:
        parents = sorted({p.rsplit(".", 1)[0] for p in paths if "." in p})
        whole = [
            parent
            for parent in parents
            if isinstance(kind := field_type(schema, parent), T.StructType)
            and all(f"{parent}.{name}" in paths for name in kind.fieldNames())
        ]
        if not whole:
            return paths
        for parent in whole:
            paths = {p for p in paths if not p.startswith(f"{parent}.")} | {parent}


def _drop_nested(column: Column, path: list[str], name: str) -> Column:
    if not path:
        return column.dropFields(name)
    return column.withField(path[0], _drop_nested(column.getField(path[0]), path[1:], name))


def with_raw_record(frame: DataFrame, pii: Iterable[str]) -> DataFrame:
    """Add `_raw_record`: the silver row as JSON, PII removed (what a quarantine row shows)."""
    return frame.withColumn(RAW, F.to_json(F.struct(*without_pii(frame, pii))))


def classify(conformed: DataFrame, key: list[str], ordering: list[str]) -> DataFrame:
    """Tag each conformed row as silver does: quarantined (has a reason), candidate (the latest valid version
    of its key in this batch), exact_duplicate or superseded."""
    return tag_dispositions(conformed, key, ordering)


@dataclass(frozen=True)
class MappingContext:
    """What a mapping needs besides the silver rows: names, the status map, accepted currencies, the key."""

    source_system: str
    source_table: str
    status_map: dict[str, str] = field(default_factory=dict)
    currencies: frozenset[str] = ISO_4217
    token_key: bytes | None = field(default=None, repr=False)
