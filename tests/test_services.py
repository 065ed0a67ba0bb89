"""The local servers of the distributed stack start, answer, restart and stop with nothing left running."""

from __future__ import annotations

import os

import pytest

from pipelines.services import Postgres, Redis, S3Server, ServiceUnavailable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("service", [Postgres, Redis, S3Server])
def test_service_starts_restarts_and_stops(service, tmp_path):
    try:
        srv = service(tmp_path)
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    with srv:
        assert srv.ready()
        first = srv.proc.pid
        srv.restart()
        assert srv.ready() and srv.proc.pid != first
        pid = srv.proc.pid
    assert not _alive(pid), f"{service.name} still running after stop"


def test_missing_binary_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("pipelines.services._postgres_bin_dirs", lambda: ())
    with pytest.raises(ServiceUnavailable, match="apt-get install redis-server"):
        Redis(tmp_path)
    with pytest.raises(ServiceUnavailable, match="postgresql"):
        Postgres(tmp_path)
