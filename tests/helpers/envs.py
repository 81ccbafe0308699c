"""The repository's paths and a throw-away environment rooted in a test's tmp folder."""

from __future__ import annotations

from pathlib import Path

from northstar.config import EnvConfig

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def make_env(root: Path, name: str = "test") -> EnvConfig:
    """An environment whose zones live under `root` (Spark local[2], 2 GB driver)."""
    return EnvConfig(
        name=name,
        profile="local",
        landing=str(root / "landing"),
        lake=str(root / "lake"),
        quarantine=str(root / "quarantine"),
        spark={"spark.master": "local[2]", "spark.driver.memory": "2g"},
    )
