"""The SQL PostgreSQL tracking installs, rendered without a server."""

from __future__ import annotations

import re

import pytest

from dbrewind.dialects.base import ForeignKey, SchemaInfo, Table
from dbrewind.dialects.postgresql import _sql, tracking

HOSTILE = 'we"ird%:{{schema}}\\$rewind$'
"""A table name with a quote, a placeholder, a backslash and the rewind's dollar quote."""


def small_schema() -> SchemaInfo:
    tables = {
        "public.parent": Table(
            key="public.parent",
            name="parent",
            schema="public",
            columns=("id", "v"),
            sequences=('"public"."parent_id_seq"',),
        ),
        f"public.{HOSTILE}": Table(
            key=f"public.{HOSTILE}",
            name=HOSTILE,
            schema="public",
            columns=("id", "parent_id"),
            identity_always=True,
        ),
    }
    fks = (
        ForeignKey(
            child=f"public.{HOSTILE}", parent="public.parent", name="fk", on_delete="NO ACTION"
        ),
    )
    return SchemaInfo(tables=tables, foreign_keys=fks)


def render(superuser: bool = True, schemas: tuple[str, ...] = ("public",)) -> str:
    schema = small_schema()
    facts = tracking._InstallFacts(
        info={"public.parent": (16384, "r"), f"public.{HOSTILE}": (16390, "r")},
        non_empty={"public.parent"},
        seq_values={'"public"."parent_id_seq"': (3, True)},
        seq_columns={(16384, '"public"."parent_id_seq"'): "id"},
    )
    return tracking._install_script(schema, facts, schemas, superuser)


def test_every_placeholder_is_filled() -> None:
    script = render()
    # The hostile name's own "{{schema}}" survives, quoted: substitution is one pass.
    found = re.findall(r"\{\{\w+\}\}", script)
    assert found
    assert len(found) == script.count("ird%:{{schema}}")


def test_the_installation_creates_its_objects() -> None:
    script = render()
    assert script.startswith("DROP EVENT TRIGGER IF EXISTS dbrewind_ddl;\n")
    for name in (
        "dbrewind.mark()",
        "dbrewind.reset_moved_sequences()",
        "dbrewind.track_again(",
        "dbrewind.push_baseline(",
        "dbrewind.pop_baseline(",
        "dbrewind.rewind(",
        "dbrewind.mark_ddl()",
    ):
        assert f"CREATE FUNCTION {name}" in script
    assert "CREATE EVENT TRIGGER dbrewind_ddl ON ddl_command_end" in script
    assert 'CREATE TABLE dbrewind."b_1" AS SELECT "id", "v" FROM ONLY "public"."parent";' in script


def test_without_superuser_no_event_trigger_and_the_rewind_always_compares() -> None:
    script = render(superuser=False)
    assert "EVENT TRIGGER dbrewind_ddl ON" not in script
    assert "IF true THEN" in script
    assert "IF marked IS NULL THEN RETURN; END IF;" not in script


def test_a_hostile_table_name_is_quoted() -> None:
    script = render()
    quoted = '"public"."we""ird%:{{schema}}\\$rewind$"'
    assert f"ON {quoted} FOR EACH STATEMENT" in script
    # In a literal the backslash makes it an escape string, with the backslash doubled.
    assert "E'public.we\"ird%:{{schema}}\\\\$rewind$'" in script
    assert "OVERRIDING SYSTEM VALUE" in script


def test_the_rewind_dollar_quote_avoids_the_schema_names() -> None:
    body = tracking._rewind_function(("public", "a$rewind$b"), False)
    assert "LANGUAGE plpgsql AS $rewind_$\n" in body
    assert body.endswith("\n$rewind_$;\n")
    assert "ARRAY['public', 'a$rewind$b']::text[]" in body


def test_render_refuses_a_missing_or_unknown_placeholder() -> None:
    with pytest.raises(AssertionError, match="placeholders"):
        _sql._render("mark.sql")
    with pytest.raises(AssertionError, match="placeholders"):
        _sql._render("mark.sql", schema="dbrewind", extra="x")


def test_the_sql_files_headers_are_not_sent() -> None:
    assert not tracking._MARK_FUNCTION.lstrip().startswith("--")
    assert tracking._MARK_FUNCTION.startswith("\nCREATE FUNCTION dbrewind.mark() RETURNS trigger")
