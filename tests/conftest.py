"""Shared fixtures: one Spark session for the whole run, a fresh lake per test, the repo's own conf."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from northstar.config import EnvConfig, SourceSpec, load_source
from northstar.spark import get_spark

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
# the key silver tokenizes PII columns with (EnvConfig.pii_token_key = env:NORTHSTAR_PII_TOKEN_KEY): a test-only value
os.environ.setdefault("NORTHSTAR_PII_TOKEN_KEY", "tests-only-pii-token-key")


def make_env(root: Path, name: str = "test") -> EnvConfig:
    return EnvConfig(
        name=name,
        profile="local",
        landing=str(root / "landing"),
        lake=str(root / "lake"),
        quarantine=str(root / "quarantine"),
        spark={"spark.master": "local[2]", "spark.driver.memory": "2g"},
    )


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    session_env = make_env(tmp_path_factory.mktemp("session"))
    # the S3 jars (hadoop-aws + AWS SDK bundle) too, so tests can reach moto's S3 over s3a://
    session_env = session_env.model_copy(update={"spark": {**session_env.spark, "northstar.s3Jars": "true"}})
    session = get_spark(session_env, app_name="northstar-tests")
    yield session
    session.stop()


@pytest.fixture
def env(tmp_path) -> EnvConfig:
    return make_env(tmp_path)


@pytest.fixture(scope="session")
def marketplace() -> SourceSpec:
    return load_source("marketplace", CONF)
