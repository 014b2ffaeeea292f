"""A prepared template is rebuilt when dbrewind's own tracking code changes."""

from __future__ import annotations

from pathlib import Path

import pytest

import dbrewind.provision.fingerprint as fingerprints


def test_the_fingerprint_follows_dbrewinds_dialect_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialects = tmp_path / "dialects"
    dialects.mkdir()
    (dialects / "postgresql.py").write_text("TRIGGER = 'AFTER'\n")
    monkeypatch.setattr(fingerprints, "_DIALECTS", dialects)

    (dialects / "base.py").write_text("class Dialect: ...\n")
    (dialects / "mysql.py").write_text("TRIGGER = 'AFTER'\n")

    before = fingerprints.fingerprint([], backend="postgresql")
    assert fingerprints.fingerprint([], backend="postgresql") == before
    (dialects / "mysql.py").write_text("TRIGGER = 'BEFORE'\n")
    assert fingerprints.fingerprint([], backend="postgresql") == before  # not its dialect
    (dialects / "postgresql.py").write_text("TRIGGER = 'BEFORE'\n")

    assert fingerprints.fingerprint([], backend="postgresql") != before


def test_files_enter_the_fingerprint_by_their_path_inside_the_root(tmp_path: Path) -> None:
    for checkout in ("a", "b"):
        models = tmp_path / checkout / "models"
        models.mkdir(parents=True)
        (models / "user.py").write_text("x = 1\n")
    first = fingerprints.fingerprint([], paths=[tmp_path / "a" / "models"], root=tmp_path / "a")
    moved = fingerprints.fingerprint([], paths=[tmp_path / "b" / "models"], root=tmp_path / "b")
    assert first == moved  # a moved checkout reuses its templates
    (tmp_path / "b" / "models" / "user.py").write_text("x = 2\n")
    assert (
        fingerprints.fingerprint([], paths=[tmp_path / "b" / "models"], root=tmp_path / "b")
        != first
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_tracking_version_covers_every_file_of_the_backends_package(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing any module or ``.sql`` file of ``dialects/<backend>/`` (or base.py) changes
    the backend's tracking version, and only its own; another backend's files do not."""
    import shutil

    fingerprint = fingerprints
    copy = tmp_path / "dialects"
    shutil.copytree(fingerprint._DIALECTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "_DIALECTS", copy)
    before = {b: fingerprint.tracking_version(b) for b in ("sqlite", "postgresql", "mysql")}
    own = sorted(p for p in (copy / backend).rglob("*") if p.suffix in (".py", ".sql"))
    assert any(p.suffix == ".sql" for p in own), own
    for path in [*own, copy / "base.py"]:
        original = path.read_bytes()
        path.write_bytes(original + b"\n-- edited\n")
        assert fingerprint.tracking_version(backend) != before[backend], path
        path.write_bytes(original)
    other = next(b for b in ("sqlite", "postgresql", "mysql") if b != backend)
    for path in own:
        path.write_bytes(path.read_bytes() + b"\n-- edited\n")
    assert fingerprint.tracking_version(other) == before[other]
