"""Card-number redaction on tiny DataFrames: Luhn-valid digit runs go, everything else stays."""

from northstar.transforms.pci import PAN_FLAG, REDACTED, redact_card_numbers

VISA = "4111111111111111"  # a well-known Luhn-valid test number
AMEX_GROUPED = "3782 822463 10005"
MASTERCARD_DASHED = "5555-5555-5555-4444"


def run(spark, *texts):
    frame = spark.createDataFrame([(t,) for t in texts], "raw string")
    return [(r.raw, r[PAN_FLAG]) for r in redact_card_numbers(frame, "raw").collect()]


def test_luhn_valid_numbers_are_redacted_in_any_grouping(spark):
    out = run(
        spark,
        f'{{"card":"{VISA}"}}',
        f'{{"note":"paid with {AMEX_GROUPED} ok"}}',
        f'{{"pan":"{MASTERCARD_DASHED}","amount":12}}',
    )
    assert out == [
        (f'{{"card":"{REDACTED}"}}', True),
        (f'{{"note":"paid with {REDACTED} ok"}}', True),
        (f'{{"pan":"{REDACTED}","amount":12}}', True),
    ]


def test_numbers_that_fail_luhn_or_length_are_kept(spark):
    kept = [
        '{"order":"4111111111111112"}',  # one digit off: fails Luhn
        '{"ts":1795000000000}',  # 13 digits, fails Luhn
        '{"id":"12345678901234567890123"}',  # a longer digit run is not a card number
        '{"phone":"+1-555-1234567"}',
    ]
    assert run(spark, *kept) == [(t, False) for t in kept]


def test_several_cards_in_one_record(spark):
    ((text, flag),) = run(spark, f'{{"a":"{VISA}","b":"{VISA}","c":"{MASTERCARD_DASHED}"}}')
    assert flag
    assert text.count(REDACTED) == 3
    assert "4111" not in text
    assert "5555" not in text
