"""File-system access through Hadoop's FileSystem API, so local paths, s3a:// and s3:// work the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

# Files a landing folder may hold that are not data (manifests, markers, partial uploads).
IGNORED_PREFIXES = ("_", ".")
IGNORED_SUFFIXES = (".tmp", ".crc", ".manifest.json")

FORMAT_SUFFIXES = {
    "jsonl": (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson"),
    "csv": (".csv", ".csv.gz"),
    "parquet": (".parquet",),
}


@dataclass(frozen=True)
class LandingFile:
    """A file found in a landing folder.

    `path` is what Spark and Hadoop open; `uri` is the file's identity, spelled as Spark's
    `_metadata.file_path` spells it (URI-encoded), and is what the lineage column and landing log hold.
    """

    path: str
    uri: str
    size: int
    modified_ms: int


def jvm(spark: SparkSession) -> Any:
    """The session's py4j view of the JVM (untyped); an error for a session without one (Spark Connect)."""
    view = spark._jvm
    if view is None:
        raise RuntimeError("this Spark session has no JVM (a Spark Connect session?); use a classic session")
    return view


def list_landing_files(spark: SparkSession, folder: str, file_format: str) -> list[LandingFile]:
    """All data files under `folder` (recursively) for the given format, sorted by path.

    A folder that does not exist yet is an empty landing zone, not an error.
    """
    hadoop_path = jvm(spark).org.apache.hadoop.fs.Path(folder)
    fs = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(hadoop_path):
        return []
    suffixes = FORMAT_SUFFIXES[file_format]
    found = []
    iterator = fs.listFiles(hadoop_path, True)
    while iterator.hasNext():
        status = iterator.next()
        name = status.getPath().getName()
        if (
            name.startswith(IGNORED_PREFIXES)
            or name.endswith(IGNORED_SUFFIXES)
            or not name.endswith(suffixes)
        ):
            continue
        file_path = status.getPath()
        found.append(
            LandingFile(
                file_path.toString(),
                spark_file_uri(file_path.toUri().toString()),
                status.getLen(),
                status.getModificationTime(),
            )
        )
    return sorted(found, key=lambda f: f.path)


def spark_file_uri(uri: str) -> str:
    """Spell a file URI as Spark's `_metadata.file_path` does (`file:/x`, not `file:///x`)."""
    return "file:/" + uri[len("file:///") :] if uri.startswith("file:///") else uri


def path_exists(spark: SparkSession, path: str) -> bool:
    hadoop_path = jvm(spark).org.apache.hadoop.fs.Path(path)
    return bool(hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()).exists(hadoop_path))


def delete_path(spark: SparkSession, path: str) -> None:
    """Remove a file or a folder with everything under it (nothing to do when it is not there)."""
    hadoop_path = jvm(spark).org.apache.hadoop.fs.Path(path)
    hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()).delete(hadoop_path, True)


def first_line(spark: SparkSession, path: str) -> str | None:
    """The first line of a file (decompressed when its suffix names a codec, e.g. .gz), or None when empty.

    Reads only the start of the file, so it is cheap on S3 too.
    """
    view = jvm(spark)
    conf = spark._jsc.hadoopConfiguration()
    hadoop_path = view.org.apache.hadoop.fs.Path(path)
    stream = hadoop_path.getFileSystem(conf).open(hadoop_path)
    try:
        codec = view.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hadoop_path)
        if codec is not None:
            stream = codec.createInputStream(stream)
        reader = view.java.io.BufferedReader(view.java.io.InputStreamReader(stream, "UTF-8"))
        return reader.readLine()
    finally:
        stream.close()


def file_sha256(spark: SparkSession, path: str) -> str:
    """SHA-256 (hex) of a file's bytes, streamed through Hadoop's FileSystem on the JVM (constant memory)."""
    view = jvm(spark)
    hadoop_path = view.org.apache.hadoop.fs.Path(path)
    stream = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()).open(hadoop_path)
    try:
        return view.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream)
    finally:
        stream.close()
