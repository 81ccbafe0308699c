"""Shared fixtures: one Spark session for the whole run, a fresh lake per test, the repo's own conf."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from northstar.config import EnvConfig, SourceSpec, conf_dir_set_to, load_source
from northstar.spark import get_spark
from tests.helpers.envs import CONF, make_env

# the key silver tokenizes PII columns with (EnvConfig.pii_token_key = env:NORTHSTAR_PII_TOKEN_KEY): a test-only value
os.environ.setdefault("NORTHSTAR_PII_TOKEN_KEY", "tests-only-pii-token-key")


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


@pytest.fixture
def use_conf() -> Iterator[Callable[[Path], Path]]:
    """Point every conf load of the test at another folder: `use_conf(tmp_path / "conf")` (the repo's conf/ is
    the default); the choice ends with the test."""
    with ExitStack() as stack:
        yield lambda folder: stack.enter_context(conf_dir_set_to(folder))


@pytest.fixture(scope="session")
def marketplace() -> SourceSpec:
    return load_source("marketplace")


__all__ = ["CONF"]
