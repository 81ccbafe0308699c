"""PCI: synthetic card numbers in Stripe-like payloads never reach bronze, quarantine, Delta logs or output."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from northstar.cli import main
from northstar.config import load_source

PANS = ["4242424242424242", "4000 0566 5566 5556", "5200-8282-8282-8210"]  # Stripe's public test numbers
DIGITS = [p.replace(" ", "").replace("-", "") for p in PANS]

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

    tables = {
        "bronze": env.bronze_path("stripe", "charges"),
        "silver": env.silver_path("stripe", "charges"),
        "quarantine": env.quarantine_path("stripe", "charges"),
        "ledger": env.run_ledger_path,
    }
    for name, path in tables.items():
        rows = [
            json.dumps(r.asDict(recursive=True), default=str)
            for r in spark.read.format("delta").load(path).collect()
        ]
        assert rows, name
        for digits in DIGITS:
            assert not any(digits in row for row in rows), f"{name} holds a card number"
    for file in Path(env.lake).rglob("*.json"):  # Delta logs carry column statistics (min/max values)
        assert not any(d in file.read_text() for d in DIGITS), file
    for file in Path(env.quarantine).rglob("*.json"):
        assert not any(d in file.read_text() for d in DIGITS), file
    output = printed.out + printed.err + caplog.text
    assert not any(d in output for d in DIGITS)

    bronze = spark.read.format("delta").load(tables["bronze"])
    assert {r.id for r in bronze.where("_pan_redacted").collect()} == {"ch_2", "ch_3", None}
    quarantined = spark.read.format("delta").load(tables["quarantine"]).collect()
    assert {r.reason for r in quarantined} == {"malformed_record", "null_primary_key"}
    assert all("[REDACTED-PAN]" in r.raw_record for r in quarantined)
    silver = {r.id: r for r in spark.read.format("delta").load(tables["silver"]).collect()}
    assert silver["ch_1"].payment_method_details.card.fingerprint == "fp1"  # tokens and fingerprints stay
    assert load_source("stripe", conf).tables["charges"].redact_card_numbers
