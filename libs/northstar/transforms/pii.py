"""PII tokenization: a table's declared `pii:` columns replaced by keyed tokens (HMAC-SHA256, hex).

A token is stable (the same e-mail gives the same token in every table and run under one key), so joins,
counts and deletion by subject still work, and it cannot be reversed without the key. The key comes from a
secret reference (EnvConfig.pii_token_key); it is passed to a Python function, never put in a query plan.
Raw values live only in the landing zone and bronze (restricted, short retention: docs/gold.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


def keyed_token(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 of `value` under `key`, hex: a stable pseudonymous token, not reversible without the key.

    Computed in a Python function so the key never appears in a query plan (plans show literals)."""

    def token(text: str | None) -> str | None:
        return None if text is None else hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    return F.udf(token, T.StringType())(value)


def _field_type(schema: T.StructType, path: list[str]) -> T.DataType | None:
    current: T.DataType = schema
    for name in path:
        if not isinstance(current, T.StructType) or name not in current.fieldNames():
            return None
        current = current[name].dataType
    return current


def tokenize(frame: DataFrame, paths: Iterable[str], key: bytes) -> DataFrame:
    """`frame` with each PII path (`email`, `customer.email`) replaced by its token, in place and as a string.

    A path the frame does not carry (an optional field no record had yet) is left alone; a path naming a
    struct or array is refused: list its leaf fields, so the rest of the struct (e.g. a country) stays usable.
    """
    for path in paths:
        parts = path.split(".")
        field = _field_type(frame.schema, parts)
        if field is None:
            continue
        if isinstance(field, T.StructType | T.ArrayType | T.MapType):
            raise ValueError(
                f"pii path {path!r} is a {field.simpleString()[:40]}: declare its leaf fields "
                f"(e.g. {path}.line1) so the fields analytics needs stay readable"
            )
        token = keyed_token(F.col(path).cast("string"), key)
        if len(parts) == 1:
            frame = frame.withColumn(path, token)
        else:
            frame = frame.withColumn(parts[0], F.col(parts[0]).withField(".".join(parts[1:]), token))
    return frame
