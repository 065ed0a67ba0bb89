"""Publishing survives a kill: an incomplete versions/N/ left behind does not break later publishes."""

from __future__ import annotations

from pathlib import Path

from pipelines.narrative.publish import publish

W = "2025-11-17"


def files(text: str) -> dict[str, bytes]:
    return {"report.md": text.encode(), "report.html": f"<p>{text}</p>".encode(), "charts/a.svg": b"<svg/>"}


def test_incomplete_version_dir_is_swept_and_reused(tmp_path: Path) -> None:
    week_dir = tmp_path / W
    p1 = publish(week_dir, W, files("one\n"))
    assert (p1.version, p1.new) == (1, True)
    # a kill during an older publish left versions/2/ with no report.md and no completion marker
    broken = week_dir / "versions" / "2"
    (broken / "charts").mkdir(parents=True)
    (broken / "charts" / "a.svg").write_bytes(b"partial")
    p2 = publish(week_dir, W, files("two\n"))
    assert (p2.version, p2.new) == (2, True)
    assert (broken / "report.md").read_text() == "two\n"
    assert (broken / ".content-sha256").read_text() == p2.content_sha256
    assert (week_dir / "report.md").read_text() == "two\n"  # latest points to the complete version
    changes = (week_dir / "CHANGES.md").read_text()
    assert "Version 1 -> version 2" in changes and "-one" in changes and "+two" in changes
    # publishing the same bytes again is a no-op; different bytes make version 3 with the right diff
    assert (publish(week_dir, W, files("two\n")).version, publish(week_dir, W, files("two\n")).new) == (
        2,
        False,
    )
    p3 = publish(week_dir, W, files("three\n"))
    assert p3.version == 3 and "Version 2 -> version 3" in (week_dir / "CHANGES.md").read_text()


def test_first_publish_after_a_killed_first_publish(tmp_path: Path) -> None:
    week_dir = tmp_path / W
    (week_dir / "versions" / "1").mkdir(parents=True)  # killed before report.md was written
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (week_dir / "versions" / f".tmp-1-{done.stdout.strip()}").mkdir()  # and a stale temporary directory
    p = publish(week_dir, W, files("one\n"))
    assert (p.version, p.new) == (1, True)
    assert (week_dir / "report.md").read_text() == "one\n"
    assert "Version 1 is the first version." in (week_dir / "CHANGES.md").read_text()
    assert sorted(x.name for x in (week_dir / "versions").iterdir()) == ["1"]


def test_no_partial_version_is_visible_while_writing(tmp_path: Path, monkeypatch) -> None:
    import pipelines.narrative.publish as pub

    week_dir = tmp_path / W
    publish(week_dir, W, files("one\n"))
    calls = {"n": 0}
    real = pub.atomic_write_bytes

    def dying(path, data):  # the kill: after report.md, before the rest
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(pub, "atomic_write_bytes", dying)
    try:
        publish(week_dir, W, files("two\n"))
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(pub, "atomic_write_bytes", real)
    assert not (week_dir / "versions" / "2").exists()  # only a temporary directory was left
    assert (week_dir / "report.md").read_text() == "one\n"
    p = publish(week_dir, W, files("two\n"))
    assert p.version == 2 and (week_dir / "report.md").read_text() == "two\n"
    assert sorted(x.name for x in (week_dir / "versions").iterdir()) == ["1", "2"]


def test_a_running_writers_temporary_dir_is_left_alone(tmp_path: Path) -> None:
    import os

    week_dir = tmp_path / W
    parent = os.getppid()  # a process that is running
    live = week_dir / "versions" / f".tmp-1-{parent}"
    live.mkdir(parents=True)
    p = publish(week_dir, W, files("one\n"))
    assert p.version == 1 and live.exists()
