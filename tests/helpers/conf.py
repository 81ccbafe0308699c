"""Load conf from a folder a test wrote (the loaders read the invocation's conf folder, the repo's by default)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from northstar.config import conf_dir_set_to

T = TypeVar("T")


def load_from(folder: Path, load: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`load(*args, **kwargs)` with every conf file read from `folder`."""
    with conf_dir_set_to(folder):
        return load(*args, **kwargs)


def with_source_stages(
    conf: Path, dest: Path, source: str, stages: list[str], schedule: str | None = None
) -> Path:
    """A copy of the conf folder `conf` at `dest` where the DAG of `source` runs `stages` (and no pools), on
    `schedule` when given."""
    shutil.copytree(conf, dest, dirs_exist_ok=True)
    path = dest / "orchestration" / "pipelines.yaml"
    pipelines = yaml.safe_load(path.read_text())
    pipelines["sources"][source]["stages"] = stages
    pipelines["sources"][source].pop("pools", None)
    if schedule is not None:
        pipelines["sources"][source]["schedule"] = schedule
    path.write_text(yaml.safe_dump(pipelines))
    return dest
