"""Resolve secret references from config: `env:NAME` locally, `secretsmanager:<secret-id>[#json-key]` in AWS.

Configuration never holds a secret, only a reference to one. The value is fetched when a job needs it and
never logged: `Secret` prints as `Secret(<ref>)`, not its value.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator

PREFIXES = ("env:", "secretsmanager:")


class SecretError(ValueError):
    """A secret reference is malformed or cannot be resolved; the message names the reference, not the value."""


def check_reference(ref: str) -> str:
    """Validate the form of a reference (for pydantic validators); returns it unchanged."""
    if not isinstance(ref, str) or not ref.startswith(PREFIXES) or ref.split(":", 1)[1] in ("", "#"):
        # the rejected value is not repeated: it may be a password pasted into config by mistake
        raise ValueError(
            "a secret must be given as a reference: env:VARIABLE_NAME (local) or "
            "secretsmanager:<secret-id>[#json-key] (AWS Secrets Manager). Never put the secret itself in config."
        )
    return ref


# a config field holding a secret reference: checked before pydantic's own type check, so a secret pasted in
# as an unquoted number (`password: 123456`) is refused without its value being echoed in the error
SecretReference = Annotated[str, BeforeValidator(check_reference)]


@dataclass(frozen=True)
class Secret:
    """A resolved secret. `repr`/`str` show the reference only, so it is safe to log the object."""

    ref: str
    value: str = field(repr=False)

    def __str__(self) -> str:
        return f"Secret({self.ref})"


def resolve(ref: str, *, secretsmanager_client: Any = None) -> Secret:  # a boto3 client (no stubs)
    """Fetch the value a reference points at.

    `env:NAME` reads the environment variable NAME. `secretsmanager:ID` reads SecretString of secret ID
    (name or ARN); `secretsmanager:ID#key` reads one key of a JSON SecretString. The Secrets Manager
    client is boto3's (region and endpoint from the usual AWS_* variables, so moto works locally).
    """
    check_reference(ref)
    kind, target = ref.split(":", 1)
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise SecretError(
                f"secret {ref}: environment variable {target} is not set; export it before running"
            )
        return Secret(ref, value)
    secret_id, _, key = target.partition("#")
    if secretsmanager_client is None:
        import boto3  # noqa: PLC0415 - boto3 takes ~0.2 s to import; only the AWS path needs it

        secretsmanager_client = boto3.client("secretsmanager")
    try:
        text = secretsmanager_client.get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as err:  # botocore raises many shapes; the message must not echo a value
        raise SecretError(
            f"secret {ref}: could not read {secret_id} from AWS Secrets Manager ({type(err).__name__}); "
            "check the secret exists and the job's role may call secretsmanager:GetSecretValue"
        ) from None
    if not key:
        return Secret(ref, text)
    try:
        return Secret(ref, str(json.loads(text)[key]))
    except (ValueError, KeyError, TypeError):
        raise SecretError(f"secret {ref}: {secret_id} is not a JSON object with the key {key!r}") from None
