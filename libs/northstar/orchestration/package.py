"""Build and upload what EMR Serverless runs: a venv-pack archive (Python 3.11 venv with the project and its
runtime dependencies, conf inside), the jobs/ entry points, the jar list, a version stamp; then upload all of
it to s3://<artifacts>/<version>/ (`northstar package`, scripts/package.sh).

pyspark and py4j are left out: EMR Serverless provides Spark. Native wheels must match the application's
architecture and glibc, so a release for AWS is built on Amazon Linux 2023 (docs/orchestration.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from northstar.orchestration.emr import ARCHIVE_NAME, CONF_IN_ARCHIVE, JOB_JARS

REPO = Path(__file__).resolve().parents[3]
PROJECT = "northstar-lakehouse"
PROVIDED_BY_EMR = {"pyspark", "py4j"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(project: str = PROJECT) -> list[str]:
    """name==version of every installed runtime dependency of the project (no extras), minus what EMR provides."""
    pins, todo = {}, [project]
    while todo:
        dist = metadata.distribution(todo.pop())
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            name = _canonical(re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0])
            if name in PROVIDED_BY_EMR or name in pins:
                continue
            try:
                pins[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue  # an environment marker excluded it here
            todo.append(name)
    return sorted(f"{n}=={v}" for n, v in pins.items())


def git_version(repo: Path = REPO) -> str:
    """`git describe --always --dirty --tags` (a tag, commits since, the hash; -dirty if uncommitted)."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--tags"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(out: Path, version: str, requirements: list[str], conf_dir: Path, jars_dir: Path) -> dict:
    """Build the release folder `out` (reset); returns its manifest (also written as manifest.json)."""
    import venv_pack  # noqa: PLC0415 - a dev-only dependency, needed only to build a release

    shutil.rmtree(out, ignore_errors=True)
    (out / "jars").mkdir(parents=True)
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--copies", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
    if requirements:
        subprocess.run([*pip, *requirements], check=True)
    wheels = out / "wheel"
    had_build_dir = (REPO / "build").exists()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
    )
    if not had_build_dir:  # setuptools builds in the checkout; leave it as it was
        shutil.rmtree(REPO / "build", ignore_errors=True)
    subprocess.run([*pip, *map(str, wheels.glob("*.whl"))], check=True)
    shutil.copytree(conf_dir, venv / Path(CONF_IN_ARCHIVE).name)
    venv_pack.pack(prefix=str(venv), output=str(out / ARCHIVE_NAME), compress_level=1, verbose=False)
    shutil.copytree(REPO / "jobs", out / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    missing = []
    for jar in JOB_JARS:
        if (jars_dir / jar).is_file():
            shutil.copy2(jars_dir / jar, out / "jars" / jar)
        else:
            missing.append(jar)
    shutil.rmtree(venv)
    shutil.rmtree(wheels)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest = {
        "version": version,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "requirements": requirements,
        "jars": list(JOB_JARS),
        "jars_missing": missing,
        "files": {str(p.relative_to(out)): _sha256(p) for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (out / "VERSION").write_text(version + "\n")
    return manifest


def upload(out: Path, artifacts: str, version: str, s3_client: Any = None) -> list[str]:  # boto3 S3 client
    """Upload the release folder to <artifacts>/<version>/; refuses to overwrite an existing version."""
    if s3_client is None:
        import boto3  # noqa: PLC0415 - boto3 takes ~0.2 s to import; only the upload needs it

        s3_client = boto3.client("s3")
    bucket, _, prefix = artifacts.removeprefix("s3://").partition("/")
    base = f"{prefix.strip('/')}/{version}".lstrip("/")
    if s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{base}/", MaxKeys=1).get("KeyCount", 0):
        raise FileExistsError(
            f"s3://{bucket}/{base}/ already exists: releases are immutable; commit and package a new version"
        )
    uris = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        key = f"{base}/{path.relative_to(out)}"
        s3_client.upload_file(str(path), bucket, key)
        uris.append(f"s3://{bucket}/{key}")
    return uris
