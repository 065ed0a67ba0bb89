"""Steps on separate machines: the Celery executor (dagster-celery) with a Redis broker, and its workers.

``CRYPTO_WEEKLY_EXECUTOR`` chooses how a run executes its steps: ``in_process`` (the default: one process, the
run's own), ``celery`` (every step is a Celery task on the broker ``CRYPTO_WEEKLY_CELERY_BROKER``, executed by
whichever worker takes it; the run's process only orchestrates) or ``k8s_job`` (dagster-k8s's
``k8s_job_executor``: every step a Kubernetes Job, for the Helm deployment of docs/deploy.md).
``pipelines.settings.validate`` checks the variables.

A worker (``crypto-weekly worker``) is ``celery -A dagster_celery.app worker`` (what ``dagster-celery worker
start`` runs) with its own DAGSTER_HOME holding ``deploy/dagster.production.yaml`` and its own scratch directory
(TMPDIR): workers share nothing but PostgreSQL (the instance), the broker and the warehouse.

Worker loss: tasks are acknowledged when they finish (``task_acks_late``), not when taken, and one at a time
(prefetch 1), so the step of a worker that dies goes back to the queue for another worker: at once when the
worker's pool process dies (``task_reject_on_worker_lost``), after the broker's visibility timeout
(``CRYPTO_WEEKLY_CELERY_VISIBILITY_TIMEOUT``) when the whole worker is gone. The timeout must exceed the longest
step: Redis hands a task still running past it to a second worker. The workers look for such tasks every
``restore_sweep_seconds(visibility)`` seconds (kombu's own default is one look per 100 s, which kept a lost step
waiting up to 100 s past a short timeout).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipelines import settings

PRODUCTION_CONFIG = settings.PROJECT_ROOT / "deploy" / "dagster.production.yaml"
# Celery's queue for the steps (dagster-celery's default queue).
QUEUE = "dagster"
DEFAULT_VISIBILITY_TIMEOUT = 3600
# The longest wait between two of a worker's looks for unacknowledged tasks past the visibility timeout.
MAX_RESTORE_SWEEP_SECONDS = 10
# What deploy/dagster.production.yaml reads (DAGSTER_PG_PASSWORD may be empty, not unset).
PG_VARIABLES = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


def executor_name(env: Mapping[str, str] | None = None) -> str:
    return settings.validate(env).get("CRYPTO_WEEKLY_EXECUTOR", "in_process")


def restore_sweep_seconds(visibility: int) -> int:
    """Seconds between a worker's looks in Redis for tasks unacknowledged past the visibility timeout: a quarter
    of the timeout, between 1 and ``MAX_RESTORE_SWEEP_SECONDS``. A lost worker's step is then taken again at most
    a quarter of the timeout (10 s) after the timeout; each look is one sorted-set query."""
    return max(1, min(MAX_RESTORE_SWEEP_SECONDS, visibility // 4))


def celery_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``celery_executor`` config from the environment: the run's side and every worker's (``-y``) alike."""
    s = settings.validate(env)
    broker = s.get("CRYPTO_WEEKLY_CELERY_BROKER")
    if not broker:
        raise settings.SettingsError(
            "Celery workers need CRYPTO_WEEKLY_CELERY_BROKER, the Redis URL of the broker "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    visibility = s.get("CRYPTO_WEEKLY_CELERY_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT)
    return {
        "broker": broker,
        # step results (their Dagster events) come back through the same Redis
        "backend": broker,
        "config_source": {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            # kombu's Redis transport looks for tasks past the timeout every unacked_restore_interval seconds,
            # but scans only on every unacked_restore_throttle-th look (defaults 10 and 10: one scan per 100 s)
            "broker_transport_options": {
                "visibility_timeout": visibility,
                "unacked_restore_interval": restore_sweep_seconds(visibility),
                "unacked_restore_throttle": 1,
            },
            "result_backend_transport_options": {"visibility_timeout": visibility},
            "broker_connection_retry_on_startup": True,
        },
    }


def build_executor(env: Mapping[str, str] | None = None):
    """The executor ``make_definitions`` gives the code location."""
    import dagster as dg

    if executor_name(env) == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(env), name="celery")
    if executor_name(env) == "k8s_job":
        return kubernetes_executor()
    return dg.in_process_executor


KUBERNETES_EXTRA = "uv sync --extra kubernetes (dagster-k8s==0.29.27, in the image)"


def kubernetes_executor():
    """dagster-k8s's ``k8s_job_executor``: each step a Kubernetes Job in the run's image (docs/deploy.md,
    "Kubernetes"). dagster-k8s is the optional ``kubernetes`` extra; without it, one clear message."""
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise settings.SettingsError(
            f"CRYPTO_WEEKLY_EXECUTOR=k8s_job needs dagster-k8s, which is not installed: {KUBERNETES_EXTRA}"
        ) from exc
    return k8s_job_executor


def prepare_home(home: Path) -> Path:
    """A DAGSTER_HOME holding the production instance configuration (PostgreSQL, the run queue and pools)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PRODUCTION_CONFIG, home / "dagster.yaml")
    (home / "storage").mkdir(exist_ok=True)
    return home


def home_env(home: Path) -> dict[str, str]:
    """What a process using ``home`` as its DAGSTER_HOME needs besides the DAGSTER_PG_* variables."""
    return {"DAGSTER_HOME": str(home), "DAGSTER_COMPUTE_LOGS_DIR": str(home / "storage")}


def worker_command(name: str, home: Path, scratch: Path, loglevel: str = "INFO") -> tuple[list[str], dict]:
    """The command line and environment of a worker: DAGSTER_HOME ``home`` (the production yaml and, as
    ``dagster-celery worker start -y`` writes it, the Celery config module ``dagster_celery_config``), TMPDIR
    ``scratch``, one step at a time. Reads the executor settings from the environment."""
    from dagster_celery.cli import get_config_dir

    missing = [name for name in PG_VARIABLES if name not in os.environ]
    if missing:
        raise settings.SettingsError(
            f"a worker reaches the instance in PostgreSQL (deploy/dagster.production.yaml): set {', '.join(missing)}"
        )
    prepare_home(home)
    scratch.mkdir(parents=True, exist_ok=True)
    config_yaml = home / "celery.yaml"
    config_yaml.write_text(yaml.safe_dump({"execution": {"config": celery_config()}}))
    env = {**os.environ, **home_env(home), "TMPDIR": str(scratch)}
    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        config_dir = get_config_dir(str(config_yaml))  # what dagster-celery worker start -y writes
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(settings.PROJECT_ROOT), env.get("PYTHONPATH", ""), config_dir) if p
    )
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "dagster_celery.app",
        "worker",
        "--prefetch-multiplier=1",
        "--concurrency=1",
        "--loglevel",
        loglevel,
        "-Q",
        QUEUE,
        "-n",
        f"{name}@%h",
    ]
    return cmd, env


def initialize_pools(env: Mapping[str, str]) -> list[str]:
    """Create the limit row of every pool the code location declares in the instance ``env`` points at (its
    DAGSTER_HOME and DAGSTER_PG_* variables), before any step meets them (``pools.initialize_pool_limits``: on
    PostgreSQL, Dagster's own first-use creation fails when two processes race). Returns the pools created."""
    import dagster as dg

    from pipelines.automation.pools import declared_pools, initialize_pool_limits
    from pipelines.definitions import all_assets
    from pipelines.runner import patched_environ

    keys = ("DAGSTER_HOME", "DAGSTER_COMPUTE_LOGS_DIR", *PG_VARIABLES)
    with patched_environ({k: env[k] for k in keys if k in env}), dg.DagsterInstance.get() as instance:
        return initialize_pool_limits(instance, declared_pools(all_assets))
