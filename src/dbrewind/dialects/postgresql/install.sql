-- The installation's fixed part: the tracking schema, its tables, the trigger
-- function, dbrewind.reset_moved_sequences() and the lifecycle functions. The
-- per-table triggers, rows and baseline copies follow it (tracking.install_script()).
-- Placeholders: {{schema}} the tracking schema; {{mark_function}} mark.sql and
-- {{lifecycle_functions}} lifecycle.sql, both rendered.

CREATE SCHEMA {{schema}};
COMMENT ON SCHEMA {{schema}} IS 'dbrewind change tracking; remove with: dbrewind uninstall URL';
CREATE TABLE {{schema}}.marks (tbl text NOT NULL);
CREATE TABLE {{schema}}.tables (
    key text PRIMARY KEY,
    ord integer NOT NULL,
    relid oid NOT NULL,
    target text NOT NULL,
    truncate_target text NOT NULL,
    referenced_by text[] NOT NULL,
    delete_sql text NOT NULL,
    restore_sql text
);
CREATE TABLE {{schema}}.table_sql (
    key text PRIMARY KEY,
    kind "char" NOT NULL,
    columns text[] NOT NULL,
    copy_sql text NOT NULL,
    restore_head text NOT NULL,
    track_sql text[] NOT NULL
);
CREATE TABLE {{schema}}.sequences (
    ref integer PRIMARY KEY,
    key text NOT NULL,
    col text,
    seq regclass NOT NULL,
    seq_name text NOT NULL,
    value bigint NOT NULL,
    called boolean NOT NULL
);
CREATE TABLE {{schema}}.state (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {{schema}}.layers (
    depth integer NOT NULL,
    key text NOT NULL,
    restore_sql text,
    copy_table text,
    PRIMARY KEY (depth, key)
);
CREATE TABLE {{schema}}.layer_sequences (
    depth integer NOT NULL,
    ref integer NOT NULL,
    value bigint NOT NULL,
    called boolean NOT NULL,
    PRIMARY KEY (depth, ref)
);
GRANT USAGE ON SCHEMA {{schema}} TO PUBLIC;
GRANT SELECT, INSERT ON {{schema}}.marks TO PUBLIC;
{{mark_function}}
CREATE FUNCTION {{schema}}.reset_moved_sequences() RETURNS void
LANGUAGE sql AS $reset$
    -- every tracked sequence that moved from its baseline value: a write rolled
    -- back to a savepoint takes its mark along, but not what it drew from a sequence
    SELECT setval(q.seq, q.value, q.called) FROM {{schema}}.sequences q
    WHERE pg_sequence_last_value(q.seq)
          IS DISTINCT FROM (CASE WHEN q.called THEN q.value END);
$reset$;
{{lifecycle_functions}}
