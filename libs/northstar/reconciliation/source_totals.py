"""Source-of-truth totals straight from a PostgreSQL source: one count/sum query per reconciliation window.

The query runs through psycopg with the source's own `jdbc` connection settings (password from its secret
reference), in a read-only session with the source's statement timeout, and is one aggregate over a date
range: `WHERE date >= first AND date < last + 1`, an index range scan on a table indexed by that column.
Expressions of a PostgreSQL profile are PostgreSQL SQL, not Spark SQL.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import psycopg
from pyspark.sql import DataFrame, SparkSession

from northstar.config import ConfigError, load_source
from northstar.extract.keyset import session_options
from northstar.reconciliation.spec import TableProfile
from northstar.secrets import SecretError, resolve

FIGURES_SCHEMA = "business_date date, currency string, count decimal(38,4), sum decimal(38,4)"
APPLICATION = "northstar-reconcile"


def totals_query(profile: TableProfile) -> str:
    """The aggregate over one date range (%s placeholders: first day, day after the last)."""
    pg = profile.postgres
    assert pg is not None
    key = " || '\x01' || ".join(f"({k})::text" for k in profile.key)
    where = f"({profile.date}) >= %s AND ({profile.date}) < %s"
    if profile.filter:
        where += f" AND ({profile.filter})"
    return (
        f"SELECT ({profile.date})::date AS business_date, upper(({profile.currency})::text) AS currency, "
        f"count(DISTINCT {key}) AS count, coalesce(sum({profile.amount}), 0) AS sum "
        f"FROM {pg.relation} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2"
    )


def source_figures(
    spark: SparkSession,
    profile: TableProfile,
    first: date,
    last: date,
) -> DataFrame:
    """business_date, currency, count, sum from the PostgreSQL source for first .. last (inclusive)."""
    pg = profile.postgres
    assert pg is not None
    source = load_source(pg.source)
    if source.jdbc is None:
        raise ConfigError(f"conf/sources/{pg.source}.yaml has no jdbc section: cannot query its totals")
    spec = source.jdbc
    try:
        secret = resolve(spec.password)
    except SecretError as err:
        raise ConfigError(f"conf/sources/{pg.source}.yaml jdbc.password: {err}") from None
    options = session_options(spec.statement_timeout, APPLICATION)
    try:
        with psycopg.connect(
            host=spec.host,
            port=spec.port,
            dbname=spec.database,
            user=spec.user,
            password=secret.value,
            sslmode=spec.sslmode,
            connect_timeout=int(spec.connect_timeout.total_seconds()),
            options=options["options"],
            application_name=options["ApplicationName"],
        ) as conn:
            rows = conn.execute(totals_query(profile), [first, last + timedelta(days=1)]).fetchall()
    except psycopg.Error as err:
        # the message names the database and the error class, never the connection's password
        raise ConfigError(
            f"source totals from {spec.where} ({pg.relation}) failed: {type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        ) from None
    figures = [(day, currency, Decimal(count), Decimal(total)) for day, currency, count, total in rows]
    return spark.createDataFrame(figures, FIGURES_SCHEMA)
