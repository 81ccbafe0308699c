"""Write extracted pages to the landing zone: gzip JSON lines with a manifest, on a local path or S3.

Object names are deterministic (`<table landing>/<run id>/page-NNNNNN.jsonl.gz`), so re-fetching a page
overwrites it instead of adding a copy. Each page gets `page-NNNNNN.manifest.json` (the request, record
count, SHA-256 of the object) which bronze ignores, as it ignores names starting with `_` (the state).
Tables with `redact_card_numbers: true` have card numbers replaced before the page is written (the same
pattern and Luhn check as bronze's redaction), so a card number from an API never lands at all.
Local writes go to a hidden temporary file first and are renamed into place, so a crash never leaves
a half-written page under a name bronze reads; S3 PUTs are atomic already.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from northstar.transforms.pci import CANDIDATE, REDACTED

PAGE_SUFFIX = ".jsonl.gz"
MANIFEST_SUFFIX = ".manifest.json"


class ObjectStore(Protocol):
    """put/get/list of whole objects under a root (a local folder or an S3 prefix)."""

    root: str

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def list(self, prefix: str) -> list[str]: ...

    def url(self, key: str) -> str:
        return f"{self.root}/{key}"


class LocalStore(ObjectStore):
    """Objects as files under a local folder; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root.removeprefix("file://")).resolve())

    def put(self, key: str, data: bytes) -> None:
        path = Path(self.root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)

    def get(self, key: str) -> bytes | None:
        path = Path(self.root) / key
        return path.read_bytes() if path.is_file() else None

    def list(self, prefix: str) -> list[str]:
        base = Path(self.root) / prefix
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())


class S3Store(ObjectStore):
    """Objects in an S3 bucket under a prefix (`s3://` or `s3a://` roots), through boto3."""

    def __init__(self, root: str, client: Any = None) -> None:  # a boto3 S3 client (no stubs)
        parsed = urlparse(root)
        self.root = root.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        if client is None:
            import boto3  # noqa: PLC0415 - boto3 takes ~0.2 s to import; only the AWS path needs it

            client = boto3.client("s3")  # endpoint and region from AWS_* variables (moto locally)
        self.client = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def list(self, prefix: str) -> list[str]:
        keys, start = [], len(self._key(""))
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix)
        ):
            keys += [item["Key"][start:] for item in page.get("Contents", [])]
        return sorted(keys)


def open_store(root: str) -> ObjectStore:
    """The store for an env's landing root: S3 for s3:// and s3a://, the local file system otherwise."""
    if root.startswith(("s3://", "s3a://")):
        return S3Store(root)
    return LocalStore(root)


_CANDIDATE = re.compile(CANDIDATE)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return 13 <= len(digits) <= 19 and total % 10 == 0


def redact_card_numbers(line: str) -> tuple[str, bool]:
    """`line` with every Luhn-valid 13-19 digit run replaced, and whether there was one."""
    found = False

    def replace(match: re.Match[str]) -> str:
        nonlocal found
        if _luhn_valid(re.sub(r"[^0-9]", "", match.group(0))):
            found = True
            return REDACTED
        return match.group(0)

    return _CANDIDATE.sub(replace, line), found


def encode_records(records: list[dict], redact: bool = False) -> tuple[bytes, int]:
    """JSON lines, one compact record per line, in the order delivered; and how many lines held a PAN."""
    lines, redacted = [], 0
    for record in records:
        line = json.dumps(record, separators=(",", ":"))
        if redact:
            line, found = redact_card_numbers(line)
            redacted += found
        lines.append(line + "\n")
    return "".join(lines).encode(), redacted


@dataclass(frozen=True)
class LandedPage:
    key: str
    records: int
    bytes: int
    sha256: str
    pan_redacted: int = 0


def page_key(table_folder: str, run_id: str, page: int) -> str:
    return f"{table_folder.strip('/')}/{run_id}/page-{page:06d}{PAGE_SUFFIX}"


def write_page(store: ObjectStore, key: str, records: list[dict], redact: bool = False) -> LandedPage:
    """Land one page (deterministic gzip: no timestamp in the header, so equal pages are equal bytes)."""
    text, redacted = encode_records(records, redact)
    data = gzip.compress(text, compresslevel=6, mtime=0)
    store.put(key, data)
    return LandedPage(key, len(records), len(data), hashlib.sha256(data).hexdigest(), redacted)


def write_manifest(store: ObjectStore, page: LandedPage, entry: dict) -> str:
    key = page.key.removesuffix(PAGE_SUFFIX) + MANIFEST_SUFFIX
    body = {
        "object": page.key,
        "records": page.records,
        "bytes": page.bytes,
        "sha256": page.sha256,
        "pan_redacted": page.pan_redacted,
        **entry,
    }
    store.put(key, json.dumps(body, indent=1, sort_keys=True).encode())
    return key
