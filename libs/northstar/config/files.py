"""The conf folder of this invocation and the one loader of every kind of conf file.

The folder is chosen once per invocation (`use_conf_dir`, which the CLI calls with `--conf-dir`), else it is
`$NORTHSTAR_CONF_DIR`, else `./conf`, else the conf/ folder of the checkout this package runs from. Each kind
of file (sources, envs, models, quality checks, reconciliation specs, single files like privacy.yaml) is one
`ConfKind` or `ConfFile` declared beside its model; every load goes through it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from northstar.config.base import parse_conf_file
from northstar.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


@dataclass
class _Choice:
    folder: Path | None = None


_CHOSEN = _Choice()


def default_conf_dir() -> Path:
    """`$NORTHSTAR_CONF_DIR`, else ./conf, else the conf/ folder of the checkout this package runs from."""
    if os.environ.get("NORTHSTAR_CONF_DIR"):
        return Path(os.environ["NORTHSTAR_CONF_DIR"])
    if Path("conf/sources").is_dir():
        return Path("conf")
    return Path(__file__).resolve().parents[3] / "conf"


def conf_dir() -> Path:
    """The conf folder every load of this invocation reads."""
    return _CHOSEN.folder or default_conf_dir()


def use_conf_dir(folder: Path | str | None) -> None:
    """Choose the conf folder for the rest of this invocation (None: back to the default)."""
    _CHOSEN.folder = Path(folder) if folder else None


def names_in(folder: str) -> list[str]:
    """The stems of the YAML files in a folder of the conf folder, sorted."""
    return sorted(p.stem for p in (conf_dir() / folder).glob("*.yaml"))


@contextmanager
def conf_dir_set_to(folder: Path | str | None) -> Iterator[Path]:
    """Read conf from `folder` inside the block (tests, a tool run over another checkout's conf)."""
    previous = _CHOSEN.folder
    use_conf_dir(folder)
    try:
        yield conf_dir()
    finally:
        _CHOSEN.folder = previous


@dataclass(frozen=True)
class ConfKind(Generic[M]):
    """One kind of conf file: `<conf>/<folder>/<name>.yaml`, each validated as `model`.

    `name_field` names the field that must equal the file's stem (None: the file names nothing);
    `expand_env` expands ${VAR} / ${VAR:-default} before parsing; `hint` is added to the "no such file" error.
    """

    folder: str
    model: type[M]
    what: str
    name_field: str | None = "name"
    expand_env: bool = False
    hint: str = field(default="")

    def directory(self) -> Path:
        return conf_dir() / self.folder

    def names(self) -> list[str]:
        """The names of every file of this kind, sorted."""
        return names_in(self.folder)

    def path(self, name: str) -> Path:
        return self.directory() / f"{name}.yaml"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def parse(self, path: Path) -> M:
        """Validate one file of this kind, wherever it is."""
        return parse_conf_file(
            path, self.model, self.what, expand_env=self.expand_env, name_field=self.name_field
        )

    def load(self, name: str) -> M:
        """The file `name` of this kind; a missing one is a ConfigError listing the ones there are."""
        path = self.path(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise ConfigError(
                f"{path}: no such {self.what} file ({self.what} files in {self.directory()}: {known}{self.hint})"
            )
        return self.parse(path)

    def load_if_present(self, name: str) -> M | None:
        """The file `name` of this kind, or None when there is none (e.g. a table without checks)."""
        return self.parse(self.path(name)) if self.exists(name) else None


@dataclass(frozen=True)
class ConfFile(Generic[M]):
    """A conf file of which there is one: `<conf>/<relative>`, validated as `model`."""

    relative: str
    model: type[M]
    what: str
    expand_env: bool = False

    def path(self) -> Path:
        return conf_dir() / self.relative

    def load(self) -> M:
        return parse_conf_file(self.path(), self.model, self.what, expand_env=self.expand_env)
