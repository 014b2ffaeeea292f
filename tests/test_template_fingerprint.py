"""A prepared template is rebuilt when dbrewind's own tracking code changes."""

from __future__ import annotations

from pathlib import Path

import pytest

import dbrewind._template as template


def test_the_fingerprint_follows_dbrewinds_dialect_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialects = tmp_path / "dialects"
    dialects.mkdir()
    (dialects / "postgresql.py").write_text("TRIGGER = 'AFTER'\n")
    monkeypatch.setattr(template, "__file__", str(tmp_path / "_template.py"))

    before = template.fingerprint([], extra=["postgresql"])
    assert template.fingerprint([], extra=["postgresql"]) == before
    (dialects / "postgresql.py").write_text("TRIGGER = 'BEFORE'\n")

    assert template.fingerprint([], extra=["postgresql"]) != before
