"""What every conf file shares: the strict base model, identifiers, ${VAR} expansion, and parsing one file
into a model with errors that name the file, the field and what is allowed."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from northstar.errors import ConfigError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")

Identifier = Annotated[str, Field(pattern=IDENTIFIER.pattern)]


class Strict(BaseModel):
    """The base of every conf model: unknown settings are errors (a misspelt key is never ignored), and a loaded
    spec is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def expand_env_vars(text: str) -> str:
    """Replace ${VAR} and ${VAR:-default} from the process environment; KeyError names an unset VAR without a
    default."""

    def replace(match: re.Match[str]) -> str:
        value = os.environ.get(match["name"])
        if value is None:
            if match["default"] is None:
                raise KeyError(match["name"])
            return match["default"]
        return value

    return ENV_VAR.sub(replace, text)


def read_yaml(path: Path, *, expand_env: bool = False) -> dict[str, Any]:
    """The top-level mapping of a YAML file; any problem is a ConfigError naming the file (and line)."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    text = path.read_text()
    if expand_env:
        try:
            text = expand_env_vars(text)
        except KeyError as err:
            raise ConfigError(
                f"{path}: environment variable {err.args[0]} is not set and has no default "
                f"(write ${{{err.args[0]}:-default}} to give one)"
            ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, found {type(data).__name__}"
        )
    return data


def parse_conf_file(
    path: Path, model: type[M], what: str, *, expand_env: bool = False, name_field: str | None = None
) -> M:
    """Read one conf YAML file into `model`; any problem is a ConfigError naming the file, the field and what
    is allowed. `name_field`: the field that names the thing the file defines; it defaults to the file's stem
    and must equal it (one file, one named thing). `expand_env`: ${VAR} / ${VAR:-default} from the environment."""
    data = read_yaml(path, expand_env=expand_env)
    if name_field:
        data.setdefault(name_field, path.stem)
    try:
        spec = model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, what, err)) from None
    if name_field and getattr(spec, name_field) != path.stem:
        raise ConfigError(
            f"{path}: {name_field} is {getattr(spec, name_field)!r} but the file is {path.name}; make them match"
        )
    return spec


def format_validation_error(path: Path, what: str, err: ValidationError) -> str:
    """pydantic's errors as one line per field: `- field: what is wrong (got value)`."""
    lines = [f"{path} is not a valid {what}:"]
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; see docs/onboarding.md for the allowed ones)"
        elif problem["type"] not in ("missing", "value_error") and not isinstance(
            problem.get("input"), dict | list
        ):
            message += f" (got {problem['input']!r})"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)
