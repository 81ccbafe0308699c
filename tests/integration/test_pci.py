"""PCI: synthetic card numbers in Stripe-like payloads never reach bronze, quarantine, Delta logs or output."""

from __future__ import annotations

import json
import logging
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from northstar.cli import main
from northstar.config import load_source
from northstar.dev.generate.stripe_events import TEST_PANS, generate_stripe_events
from northstar.lake import tables
from northstar.transforms.pci import CANDIDATE
from tests.helpers.conf import load_from
from tests.helpers.envs import CONF

PANS = ["4242424242424242", "4000 0566 5566 5556", "5200-8282-8282-8210"]  # Stripe's public test numbers
DIGITS = [p.replace(" ", "").replace("-", "") for p in PANS]


def luhn_valid(candidate: str) -> bool:
    digits = [int(c) for c in re.sub(r"[^0-9]", "", candidate)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def card_numbers_in(text: str) -> list[str]:
    """Luhn-valid digit runs (13-19 digits, spaces or dashes allowed), found the way the pipeline finds them."""
    return [m for m in re.findall(CANDIDATE, text) if luhn_valid(m)]


def spellings(pans: list[str]) -> list[str]:
    """Each card number as delivered and as bare digits."""
    return sorted({p for pan in pans for p in (pan, re.sub(r"[^0-9]", "", pan))})


class _Captured:
    text = ""


@contextmanager
def spark_log(spark, level: str):
    """Capture what Spark and Delta log (log4j2, in the JVM) at `level` while the block runs."""
    jvm = spark._jvm
    writer = jvm.java.io.StringWriter()
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    config = context.getConfiguration()
    layout = (
        jvm.org.apache.logging.log4j.core.layout.PatternLayout.newBuilder().withPattern("%p %c: %m%n").build()
    )
    appender = jvm.org.apache.logging.log4j.core.appender.WriterAppender.createAppender(
        layout, None, writer, "pci-test-capture", False, True
    )
    appender.start()
    config.addAppender(appender)
    config.getRootLogger().addAppender(appender, None, None)
    context.updateLoggers()
    spark.sparkContext.setLogLevel(level)
    set_level = spark.sparkContext.setLogLevel
    spark.sparkContext.setLogLevel = lambda _: None  # get_spark() (called by the command) sets ERROR
    captured = _Captured()
    try:
        yield captured
    finally:
        del spark.sparkContext.setLogLevel  # the class's method again
        set_level("ERROR")
        config.getRootLogger().removeAppender("pci-test-capture")
        appender.stop()
        context.updateLoggers()
        captured.text = writer.toString()


HASH_FIELDS = {"_record_hash", "record_hash", "content_sha256"}  # hex digests: digit runs by chance


def text_values(value, name: str = "") -> list[str]:
    """Every string inside a row (nested ones too), leaving out hex digests."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in text_values(v, k)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in text_values(v, name)]
    if not isinstance(value, str) or name in HASH_FIELDS:
        return []
    return [re.sub(r"[0-9a-f]{64}", "<sha256>", value)]  # hashes inside JSON text (quarantined records)


def assert_no_card_numbers(spark, roots: list[Path], pans: list[str], output: str) -> int:
    """No card number under `roots` (read through Delta, file by file, and as raw bytes) nor in `output`.

    Returns how many Delta tables were read (so a caller can check the scan found its tables)."""
    known = spellings(pans)
    table_dirs = sorted({p.parent.parent for root in roots for p in root.rglob("_delta_log/*.json")})
    for table in table_dirs:  # every table's current rows: no Luhn-valid digit run in any text value
        for row in spark.read.format("delta").load(str(table)).collect():
            text = json.dumps(row.asDict(recursive=True), default=str)
            assert not any(k in text for k in known), f"{table} holds a card number"
            found = [n for value in text_values(row.asDict(recursive=True)) for n in card_numbers_in(value)]
            assert not found, f"{table} holds a Luhn-valid number"
    for root in roots:
        for file in root.rglob("*.parquet"):  # every data file, also those no longer in a table's snapshot
            for row in spark.read.parquet(str(file)).collect():
                text = json.dumps(row.asDict(recursive=True), default=str)
                assert not any(k in text for k in known), file
        for file in root.rglob(
            "*"
        ):  # raw bytes: Delta logs (column statistics), checkpoints, parquet footers
            if file.is_file():
                data = file.read_bytes()
                assert not any(k.encode() in data for k in known), file
    # logs hold epoch-millisecond timestamps (13 digits, a tenth pass Luhn): look for the numbers themselves
    assert not any(k in output for k in known), "a card number was printed or logged"
    return len(table_dirs)


SOURCE = """
tables:
  charges:
    format: jsonl
    landing: stripe/charges
    primary_key: [id]
    ordering: [created]
    redact_card_numbers: true
"""


def test_card_numbers_never_reach_storage_or_logs(spark, env, tmp_path, capsys, caplog):
    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    (conf / "sources" / "stripe.yaml").write_text(SOURCE)
    (conf / "env").mkdir()
    (conf / "env" / "t.yaml").write_text(
        f"profile: local\nlanding: {env.landing}\nlake: {env.lake}\nquarantine: {env.quarantine}\n"
    )
    lines = [
        {
            "id": "ch_1",
            "created": 1,
            "amount": 500,
            "payment_method_details": {"card": {"last4": "4242", "fingerprint": "fp1"}},
        },
        {"id": "ch_2", "created": 2, "amount": 900, "description": f"customer typed {PANS[0]} into notes"},
        {"id": "ch_3", "created": 3, "amount": 100, "metadata": {"raw": PANS[1]}},
        {"id": None, "created": 4, "amount": 1, "note": PANS[2]},  # null key: goes to quarantine
    ]
    landing = Path(env.landing) / "stripe" / "charges"
    landing.mkdir(parents=True)
    text = (
        "\n".join(json.dumps(x) for x in lines) + "\n" + f'{{"id":"ch_9","card":"{PANS[0]}",' + "\n"
    )  # truncated
    (landing / "charges-0001.jsonl").write_text(text)

    with caplog.at_level(logging.DEBUG):
        assert main(["run", "--source", "stripe", "--env", "t", "--conf-dir", str(conf)]) == 0
    printed = capsys.readouterr()

    paths = {
        "bronze": tables.bronze("stripe", "charges").path(env),
        "silver": tables.silver("stripe", "charges").path(env),
        "quarantine": tables.quarantine("stripe", "charges").path(env),
        "ledger": tables.RUN_LEDGER.path(env),
    }
    for name, path in paths.items():
        assert spark.read.format("delta").load(path).count(), name
    output = printed.out + printed.err + caplog.text
    assert assert_no_card_numbers(spark, [Path(env.lake), Path(env.quarantine)], PANS, output) >= 4

    bronze = spark.read.format("delta").load(paths["bronze"])
    assert {r.id for r in bronze.where("_pan_redacted").collect()} == {"ch_2", "ch_3", None}
    quarantined = spark.read.format("delta").load(paths["quarantine"]).collect()
    assert {r.reason for r in quarantined} == {"malformed_record", "null_primary_key"}
    assert all("[REDACTED-PAN]" in r.raw_record for r in quarantined)
    silver = {r.id: r for r in spark.read.format("delta").load(paths["silver"]).collect()}
    assert silver["ch_1"].payment_method_details.card.fingerprint == "fp1"  # tokens and fingerprints stay
    assert load_from(conf, load_source, "stripe").tables["charges"].redact_card_numbers


def test_stripe_webhook_events_leave_no_card_number_in_tables_files_or_logs(
    spark, env, tmp_path, capfd, caplog
):
    """The generated webhook feed (card numbers in descriptions, metadata and a truncated line), run through the
    command line with Spark logging at INFO: nothing Luhn-valid in any table, data file, Delta log or output."""
    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    shutil.copy(CONF / "sources" / "stripe_events.yaml", conf / "sources")
    (conf / "env").mkdir()
    (conf / "env" / "t.yaml").write_text(
        f"profile: local\nlanding: {env.landing}\nlake: {env.lake}\nquarantine: {env.quarantine}\n"
    )
    feed = generate_stripe_events(Path(env.landing) / "stripe" / "events", payments=40, files=2, seed=9)
    landed = "".join(p.read_text() for p in feed.files)
    assert feed.pan_lines > 0
    assert any(pan in landed for pan in TEST_PANS)  # the feed does carry card numbers

    with spark_log(spark, "INFO") as jvm_log, caplog.at_level(logging.DEBUG):
        assert main(["run", "--source", "stripe_events", "--env", "t", "--conf-dir", str(conf)]) == 0
    printed = capfd.readouterr()
    output = printed.out + printed.err + caplog.text + jvm_log.text
    assert "INFO org.apache.spark.scheduler.DAGScheduler: Job" in jvm_log.text  # Spark's log was captured

    assert not card_numbers_in(printed.out)  # the run report: nothing Luhn-valid at all
    scanned = assert_no_card_numbers(spark, [Path(env.lake), Path(env.quarantine)], TEST_PANS, output)
    assert scanned >= 8  # bronze, silver, quarantine of both tables, ledger, landing log
    for table in ("events", "objects"):
        bronze = spark.read.format("delta").load(tables.bronze("stripe_events", table).path(env))
        flagged = bronze.where("_pan_redacted").collect()
        assert len(flagged) == feed.pan_lines  # every line that carried one, parsed or not
        quarantined = (
            spark.read.format("delta").load(tables.quarantine("stripe_events", table).path(env)).collect()
        )
        malformed = [r for r in quarantined if r.reason == "malformed_record"]
        assert len(malformed) == feed.malformed
        assert any("[REDACTED-PAN]" in r.raw_record for r in malformed)
    silver = spark.read.format("delta").load(tables.silver("stripe_events", "objects").path(env))
    charge = silver.where("object_type = 'charge'").first()
    card = charge.data.object.payment_method_details.card
    assert card.fingerprint
    assert len(card.last4) == 4  # tokens and fingerprints are kept
    assert silver.where("data.object.description LIKE '%[REDACTED-PAN]%'").count() > 0
