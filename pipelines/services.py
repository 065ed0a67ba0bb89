"""Local servers on 127.0.0.1 for the distributed stack and its tests: PostgreSQL, Redis and an S3 server.

Each is the real engine a production deployment uses (Debian's ``postgresql`` and ``redis-server``, moto's S3
server from PyPI), started in a temporary directory on a free port, and stopped with everything it started:

    with Postgres(workdir) as pg, Redis(workdir) as redis, S3Server(workdir) as s3:
        pg.url, redis.url, s3.endpoint

A binary that is not installed raises ``ServiceUnavailable`` naming the package to install, so a test skips with
that reason and ``make demo-distributed`` prints one line instead of a stack trace. A server that does not come
up raises ``ServiceFailed`` with the end of its log.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ServiceUnavailable(RuntimeError):
    """A server's binary is not installed here (the message says which package provides it)."""


class ServiceFailed(RuntimeError):
    """A server was started but did not become ready, or died."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(name: str, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    for d in extra_dirs:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise ServiceUnavailable(
            f"{name} is not installed (Debian package {package!r}: apt-get install {package})"
        )
    return found


def _postgres_bin_dirs() -> tuple[str, ...]:
    base = Path("/usr/lib/postgresql")
    if not base.is_dir():
        return ()
    return tuple(str(p / "bin") for p in sorted(base.iterdir(), reverse=True) if (p / "bin").is_dir())


class LocalService:
    """One server process in its own process group, logging to ``<workdir>/<name>.log``."""

    name = "service"

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None, ready_timeout: float = 60.0):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    # subclasses: the command line, and a readiness probe that returns True when the server answers
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time setup before the first start (a data directory, say)."""

    def after_ready(self) -> None:
        """Setup that needs the server up (a database, a bucket)."""

    def preexec(self) -> Callable[[], None] | None:
        return None

    def start(self) -> LocalService:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.proc is None:
            self.prepare()
        self._spawn()
        self.after_ready()
        return self

    def _spawn(self) -> None:
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=self.preexec(),
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.ready():
                    return
            except Exception:  # not answering yet: poll again until the deadline, then report the log
                pass
            time.sleep(0.1)
        self.stop()
        raise ServiceFailed(
            f"{self.name} did not answer within {self.ready_timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the server's process group, then SIGKILL if it has not exited within ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port and data (a server restart during a run)."""
        self.stop()
        self._spawn()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Postgres(LocalService):
    """PostgreSQL in a temporary data directory, trust authentication on 127.0.0.1 only.

    PostgreSQL refuses to run as root: when this process is root, the cluster is created and run as the
    ``postgres`` user of Debian's package (or ``nobody``), and its directory is handed to that user.
    """

    name = "postgres"
    user = "dagster"
    database = "dagster"

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None, ready_timeout: float = 60.0):
        super().__init__(workdir, port, ready_timeout)
        dirs = _postgres_bin_dirs()
        self.postgres = find_binary("postgres", "postgresql", dirs)
        self.initdb = find_binary("initdb", "postgresql", dirs)
        # Run as another user when root, the cluster lives in its own directory under the system's temporary
        # directory: the caller's workdir may sit under directories only root can enter (pytest's tmp_path).
        self.clusterdir = (
            Path(tempfile.mkdtemp(prefix="crypto-weekly-postgres-")) if os.geteuid() == 0 else self.workdir
        )
        self.datadir = self.clusterdir / "pgdata"
        self.sockdir = self.clusterdir / "pgsock"

    def _run_as(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise ServiceUnavailable("running as root and there is no unprivileged user to run PostgreSQL as")

    def preexec(self) -> Callable[[], None] | None:
        user = self._run_as()
        if user is None:
            return None

        def drop() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

        return drop

    def prepare(self) -> None:
        user = self._run_as()
        for d in (self.clusterdir, self.datadir, self.sockdir):
            d.mkdir(parents=True, exist_ok=True)
            if user is not None:
                os.chown(d, user.pw_uid, user.pw_gid)
        if not (self.datadir / "PG_VERSION").exists():
            done = subprocess.run(
                [
                    self.initdb,
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                capture_output=True,
                preexec_fn=self.preexec(),
                cwd=self.clusterdir,
            )
            if done.returncode != 0:
                raise ServiceFailed(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def command(self) -> list[str]:
        return [
            self.postgres,
            "-D",
            str(self.datadir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.sockdir),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.clusterdir != self.workdir:
            shutil.rmtree(self.clusterdir, ignore_errors=True)

    def _connect(self, database: str) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname=database, connect_timeout=2
        )

    def ready(self) -> bool:
        self._connect("postgres").close()
        return True

    def after_ready(self) -> None:
        from psycopg2 import sql

        con = self._connect("postgres")
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        finally:
            con.close()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def env(self) -> dict[str, str]:
        """The variables ``deploy/dagster.production.yaml`` reads."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": self.database,
        }


class Redis(LocalService):
    """Redis with no persistence, on 127.0.0.1: the Celery broker and result backend."""

    name = "redis"

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None, ready_timeout: float = 30.0):
        super().__init__(workdir, port, ready_timeout)
        self.binary = find_binary("redis-server", "redis-server")

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]

    def ready(self) -> bool:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1).ping())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class S3Server(LocalService):
    """moto's S3-compatible server (``moto_server``, installed with the dev dependencies) with one bucket."""

    name = "s3"
    bucket = "crypto-weekly"
    access_key = "local"
    secret_key = "local-secret"

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None, ready_timeout: float = 30.0):
        super().__init__(workdir, port, ready_timeout)
        self.binary = find_binary(
            "moto_server", "moto[server] from PyPI (uv sync)", (str(Path(sys.executable).parent),)
        )

    def command(self) -> list[str]:
        return [self.binary, "-H", "127.0.0.1", "-p", str(self.port)]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        with urllib.request.urlopen(self.endpoint + "/", timeout=1) as r:
            return r.status == 200

    def after_ready(self) -> None:
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )
        try:
            client.head_bucket(Bucket=self.bucket)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=self.bucket)

    def env(self) -> dict[str, str]:
        """The standard AWS variables every S3 client here reads (s3fs, botocore)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def url(self, prefix: str = "warehouse") -> str:
        return f"s3://{self.bucket}/{prefix}"
