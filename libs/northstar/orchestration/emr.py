"""EMR Serverless job drivers from conf: entry point, arguments and Spark properties of one stage's job run.

Pure functions (no Airflow, no AWS call): what the DAG factory passes to EmrServerlessStartJobOperator and
what the tests compare the submitted job run against.
"""

from __future__ import annotations

from northstar.config import EnvConfig
from northstar.config.env import EmrSpec
from northstar.orchestration.spec import StageSpec, fill

# The packaged release (scripts/package.sh / `northstar package`) holds, under <artifacts>/<version>/:
ARCHIVE_NAME = "northstar-env.tar.gz"  # venv-pack archive: Python 3.11 venv with the project, conf/ inside
ARCHIVE_ALIAS = "environment"  # unpacked by EMR as ./environment on the driver and every executor
CONF_IN_ARCHIVE = f"./{ARCHIVE_ALIAS}/northstar-conf"
# Jars the job runs need besides the runtime's Spark and Delta: the JDBC driver, and the AWS SDK v1 client that
# Delta's DynamoDB commit coordinator (inside delta-spark) uses (docs/concurrent-writers.md).
JOB_JARS = (
    "postgresql-42.7.4.jar",
    "aws-java-sdk-core-1.12.262.jar",
    "aws-java-sdk-dynamodb-1.12.262.jar",
)


class OrchestrationError(ValueError):
    """The env cannot run DAGs (no `emr:` section) or a stage is unusable; says what to add."""


def require_emr(env: EnvConfig) -> EmrSpec:
    if env.emr is None:
        raise OrchestrationError(
            f"env {env.name} has no emr: section; DAGs need one (applications, execution_role_arn, log_uri, "
            "artifacts, artifact_version): see conf/env/dev.yaml and docs/orchestration.md"
        )
    return env.emr


def spark_properties(env: EnvConfig) -> dict[str, str]:
    """Every Spark property a job run gets: the archive, the Python in it, jars, sizing, the env's settings."""
    emr = require_emr(env)
    python = f"./{ARCHIVE_ALIAS}/bin/python"
    properties = {
        "spark.archives": f"{emr.release_folder}/{ARCHIVE_NAME}#{ARCHIVE_ALIAS}",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": python,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": python,
        "spark.executorEnv.PYSPARK_PYTHON": python,
        "spark.emr-serverless.driverEnv.NORTHSTAR_CONF_DIR": CONF_IN_ARCHIVE,
        "spark.jars": ",".join(f"{emr.release_folder}/jars/{jar}" for jar in JOB_JARS),
        "spark.sql.session.timeZone": "UTC",
    }
    if env.delta_commit_coordinator is not None:
        # only the plain-text setting: the coordinator's JSON conf is applied by get_spark from the env file
        # inside the archive, so no JSON has to survive sparkSubmitParameters' quoting
        properties.update(env.delta_commit_coordinator.submit_settings())
    properties.update(env.spark)
    properties.update(emr.spark)
    return properties


def submit_parameters(properties: dict[str, str]) -> str:
    return " ".join(f"--conf {key}={value}" for key, value in properties.items())


def job_driver(env: EnvConfig, stage: StageSpec, **placeholders: str) -> dict:
    """The `jobDriver` of StartJobRun for one stage: entry point in the release folder, filled arguments."""
    emr = require_emr(env)
    return {
        "sparkSubmit": {
            "entryPoint": f"{emr.release_folder}/{stage.entry_point}",
            "entryPointArguments": fill(stage.arguments, env=env.name, **placeholders),
            "sparkSubmitParameters": submit_parameters(spark_properties(env)),
        }
    }


def configuration_overrides(env: EnvConfig) -> dict:
    """Logs of every job run go to the env's log URI (S3), as Airflow's example sets `logUri` always."""
    return {"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": require_emr(env).log_uri}}}
