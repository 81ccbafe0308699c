"""`northstar run` in separate OS processes (each its own JVM), for races between two runs of one table.

`conf_with_env` copies the repo's conf/ into a test folder and adds one env file; `start_run` starts
`python -m northstar.cli run ...` against it; `finish` waits and returns (exit code, stdout, stderr).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.envs import CONF, REPO

RUN_TIMEOUT = 300


def conf_with_env(folder: Path, name: str, env: dict[str, Any]) -> Path:
    """A copy of the repo's conf/ with conf/env/<name>.yaml = `env`."""
    conf = folder / "conf"
    shutil.copytree(CONF, conf)
    (conf / "env" / f"{name}.yaml").write_text(yaml.safe_dump(env))
    return conf


def local_env(root: Path, lease_seconds: float) -> dict[str, Any]:
    """An env file whose zones live under `root`; one core and 1 GB per JVM (two run at once)."""
    return {
        "profile": "local",
        "landing": str(root / "landing"),
        "lake": str(root / "lake"),
        "quarantine": str(root / "quarantine"),
        "spark": {"spark.master": "local[1]", "spark.driver.memory": "1g"},
        "run_lease_seconds": lease_seconds,
    }


def start_run(conf: Path, env: str, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """`northstar run --env <env> <args>` in a new process (its own JVM), from a neutral working folder."""
    process_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "libs"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "NORTHSTAR_JARS_DIR": os.environ.get("NORTHSTAR_JARS_DIR", str(REPO / ".jars")),
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "northstar.cli", "run", "--env", env, "--conf-dir", str(conf), *args],
        cwd=conf.parent,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=RUN_TIMEOUT)
    return process.returncode, out, err
