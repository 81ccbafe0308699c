"""Load conf from a folder a test wrote (the loaders read the invocation's conf folder, the repo's by default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from northstar.config import conf_dir_set_to

T = TypeVar("T")


def load_from(folder: Path, load: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`load(*args, **kwargs)` with every conf file read from `folder`."""
    with conf_dir_set_to(folder):
        return load(*args, **kwargs)
