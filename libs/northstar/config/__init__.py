"""Configuration: the conf files' models (pydantic), the one loader, and where the conf folder is.

`northstar.config` is the public face of the package: the specs and loaders the rest of the code uses.
"""

from northstar.config.base import Identifier, Strict, parse_conf_file
from northstar.config.env import EnvConfig, load_env
from northstar.config.files import ConfFile, ConfKind, conf_dir, conf_dir_set_to, use_conf_dir
from northstar.config.source import (
    ColumnSpec,
    CsvOptions,
    SourceSpec,
    StreamSpec,
    TableSpec,
    enabled_sources,
    list_sources,
    load_source,
    parse_source,
)
from northstar.errors import ConfigError

__all__ = [
    "ColumnSpec",
    "ConfFile",
    "ConfKind",
    "ConfigError",
    "CsvOptions",
    "EnvConfig",
    "Identifier",
    "SourceSpec",
    "StreamSpec",
    "Strict",
    "TableSpec",
    "conf_dir",
    "conf_dir_set_to",
    "enabled_sources",
    "list_sources",
    "load_env",
    "load_source",
    "parse_conf_file",
    "parse_source",
    "use_conf_dir",
]
