"""Card numbers (PANs) never reach storage: find digit runs that pass the Luhn check and redact them.

Runs on the raw text of each record before it is parsed, so the value is gone from bronze, quarantine
and anything derived from them. Built from Spark column functions (no Python UDF), so it stays on the JVM.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

REDACTED = "[REDACTED-PAN]"
PAN_FLAG = "_pan_redacted"

# 13-19 digits, optionally grouped by single spaces or dashes, not part of a longer digit run
CANDIDATE = r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])"


def luhn_valid(candidate: Column) -> Column:
    """True when the digits of `candidate` are 13-19 long and pass the Luhn checksum."""
    digits = F.transform(F.split(F.regexp_replace(candidate, "[^0-9]", ""), ""), lambda x: x.cast("int"))
    n = F.size(digits)

    def add(total: Column, i: Column) -> Column:
        digit = F.element_at(digits, n - i)  # 1-based: i = 0 is the last (check) digit
        doubled = digit * 2
        return total + F.when(i % 2 == 1, F.when(doubled > 9, doubled - 9).otherwise(doubled)).otherwise(
            digit
        )

    return n.between(13, 19) & (F.aggregate(F.sequence(F.lit(0), n - 1), F.lit(0), add) % 10 == 0)


def card_numbers(text: Column) -> Column:
    """The Luhn-valid card-number candidates in `text` (an empty array when there are none)."""
    return F.filter(F.regexp_extract_all(text, F.lit(CANDIDATE), 0), luhn_valid)


def redact_card_numbers(frame: DataFrame, text_column: str) -> DataFrame:
    """Replace every Luhn-valid card number in `text_column` and set `_pan_redacted` on those rows."""
    found = card_numbers(F.col(text_column))
    redacted = F.aggregate(found, F.col(text_column), lambda text, pan: F.replace(text, pan, F.lit(REDACTED)))
    return frame.withColumn(PAN_FLAG, F.size(found) > 0).withColumn(
        text_column, F.when(F.size(found) > 0, redacted).otherwise(F.col(text_column))
    )


def redact_string_columns(frame: DataFrame, columns: list[str]) -> DataFrame:
    """The same for records without raw text (CSV, Parquet): every string column is scanned."""
    strings = [c for c in columns if c in frame.columns and dict(frame.dtypes)[c] == "string"]
    if not strings:
        return frame
    flagged = F.lit(False)
    for column in strings:
        flagged = flagged | (F.size(card_numbers(F.col(f"`{column}`"))) > 0)
    frame = frame.withColumn(PAN_FLAG, flagged)  # flag first: the checks below see redacted values
    for column in strings:
        pans = card_numbers(F.col(f"`{column}`"))
        redacted = F.aggregate(
            pans, F.col(f"`{column}`"), lambda text, pan: F.replace(text, pan, F.lit(REDACTED))
        )
        frame = frame.withColumn(column, redacted)
    return frame
