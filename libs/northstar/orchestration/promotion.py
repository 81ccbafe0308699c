"""Environment promotion check (dev -> staging -> prod): what an earlier env has, every later env must have.

Catches the config that works in dev and breaks in prod: a source dev runs that prod does not list, a secret
name dev resolves that prod lacks, an orchestration section (emr, alerts, delta_commit_coordinator) or an EMR Spark
setting present in dev and absent in prod. `northstar validate-conf --promotion dev,staging,prod` runs it.
"""

from __future__ import annotations

from northstar.config import EnvConfig, enabled_sources, list_sources, load_env

SECTIONS = ("emr", "alerts", "delta_commit_coordinator")


def check_env(env: EnvConfig) -> list[str]:
    """One env alone: its sources exist; an emr-profile env has what the DAGs need."""
    problems = []
    known = list_sources()
    unknown = [s for s in env.sources or [] if s not in known]
    if unknown:
        problems.append(
            f"conf/env/{env.name}.yaml: sources names {', '.join(unknown)}, which has no file in "
            f"conf/sources (known: {', '.join(known)})"
        )
    if env.profile == "emr":
        missing = [s for s in ("emr", "alerts") if getattr(env, s) is None]
        if missing:
            problems.append(
                f"conf/env/{env.name}.yaml: profile emr needs the {', '.join(missing)} section(s) "
                "(see conf/env/dev.yaml)"
            )
    return problems


def check_promotion(names: list[str]) -> list[str]:
    """Problems, each naming the later env's file, the field and what the earlier env has there."""
    envs = [load_env(n) for n in names]
    problems = [p for env in envs for p in check_env(env)]
    for earlier, later in zip(envs, envs[1:], strict=False):
        where = f"conf/env/{later.name}.yaml"
        missing = sorted(set(enabled_sources(earlier)) - set(enabled_sources(later)))
        if missing:
            problems.append(f"{where}: sources lacks {', '.join(missing)}, which {earlier.name} runs")
        missing = sorted(set(earlier.secrets) - set(later.secrets))
        if missing:
            problems.append(
                f"{where}: secrets lacks {', '.join(missing)}, which {earlier.name} defines "
                "(add a secretsmanager: reference for this env)"
            )
        for section in SECTIONS:
            if getattr(earlier, section) is not None and getattr(later, section) is None:
                problems.append(f"{where}: no {section} section, but {earlier.name} has one")
        if earlier.emr and later.emr:
            missing = sorted(set(earlier.emr.spark) - set(later.emr.spark))
            if missing:
                problems.append(f"{where}: emr.spark lacks {', '.join(missing)}, which {earlier.name} sets")
    return problems
