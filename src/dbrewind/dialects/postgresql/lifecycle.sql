-- dbrewind.track_again(..), dbrewind.push_baseline(..), dbrewind.pop_baseline(..):
-- a table created again gets its tracking back; baseline layers are pushed
-- and popped, each in one statement.
-- Placeholders: {{schema}} the tracking schema; {{own_ddl}} the literal name of
-- the setting that marks dbrewind's own DDL; {{trigger}} the literal name of
-- the tracking triggers.

CREATE FUNCTION {{schema}}.track_again(table_key text, new_relid oid) RETURNS void
LANGUAGE plpgsql AS $again$
-- The tracked table table_key was dropped and created again as new_relid:
-- give it its tracking triggers back and point its baseline at it, or raise
-- (the caller reports it dropped) when the baseline rows no longer fit it.
DECLARE
    t record;
    q record;
    stmt text;
    kind "char";
    candidates oid[];
    chosen oid;
BEGIN
    SELECT k.target, k.restore_sql, x.kind, x.columns, x.track_sql INTO STRICT t
    FROM {{schema}}.tables k JOIN {{schema}}.table_sql x ON x.key = k.key
    WHERE k.key = table_key;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = new_relid;
    IF kind IS DISTINCT FROM t.kind THEN
        RAISE EXCEPTION 'dbrewind: % was created again as another kind of relation', t.target;
    END IF;
    IF t.restore_sql IS NOT NULL AND EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = new_relid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
          AND NOT a.attname::text = ANY(t.columns)
    ) THEN
        RAISE EXCEPTION 'dbrewind: % has a NOT NULL column its baseline rows lack', t.target;
    END IF;
    -- Partitions attached again may still carry their trigger.
    FOR q IN SELECT tg.tgrelid::regclass AS rel FROM pg_trigger tg
             WHERE tg.tgname = {{trigger}}
               AND (tg.tgrelid = new_relid
                    OR tg.tgrelid IN (SELECT p.relid FROM pg_partition_tree(new_relid) p)) LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', {{trigger}}, q.rel);
    END LOOP;
    FOREACH stmt IN ARRAY t.track_sql LOOP
        EXECUTE stmt;
    END LOOP;
    IF t.restore_sql IS NOT NULL THEN  -- parsed and planned, inserts nothing: columns and types
        EXECUTE t.restore_sql || ' LIMIT 0';
    END IF;
    -- The sequences the new table's columns draw from (a new table owns new sequences).
    FOR q IN SELECT * FROM {{schema}}.sequences s WHERE s.key = table_key LOOP
        SELECT array_agg(DISTINCT r.seqid) INTO candidates
        FROM (
            SELECT d.objid AS seqid
            FROM pg_depend d
            JOIN pg_attribute a ON a.attrelid = new_relid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.deptype IN ('a', 'i') AND d.refobjid = new_relid AND a.attname = q.col
            UNION
            SELECT d.refobjid
            FROM pg_attrdef ad
            JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
            JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                            AND d.refclassid = 'pg_class'::regclass
            WHERE ad.adrelid = new_relid AND a.attname = q.col
        ) r
        JOIN pg_class sc ON sc.oid = r.seqid AND sc.relkind = 'S';
        chosen := CASE
            WHEN q.seq::oid = ANY(candidates) THEN q.seq::oid
            WHEN to_regclass(q.seq_name)::oid = ANY(candidates) THEN to_regclass(q.seq_name)::oid
            WHEN cardinality(candidates) = 1 THEN candidates[1]
        END;
        IF chosen IS NULL THEN
            RAISE EXCEPTION 'dbrewind: column % of % draws from no sequence now', q.col, t.target;
        END IF;
        UPDATE {{schema}}.sequences s
        SET seq = chosen::regclass,
            seq_name = (SELECT format('%I.%I', sn.nspname, sc.relname)
                        FROM pg_class sc JOIN pg_namespace sn ON sn.oid = sc.relnamespace
                        WHERE sc.oid = chosen)
        WHERE s.ref = q.ref;
    END LOOP;
    UPDATE {{schema}}.tables k SET relid = new_relid WHERE k.key = table_key;
END
$again$;

CREATE FUNCTION {{schema}}.push_baseline(lock_timeout text DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql AS $push$
-- The dirty tables' rows and sequence values become their baseline, one layer up.
DECLARE
    captured text[];
    stale text;
    layer integer;
    t record;
    q record;
    has_rows boolean;
    copy_name text;
    last_value bigint;
    is_called boolean;
BEGIN
    IF lock_timeout IS NOT NULL THEN
        PERFORM set_config('lock_timeout', lock_timeout, true);
    END IF;
    LOCK TABLE {{schema}}.layers IN SHARE ROW EXCLUSIVE MODE;  -- one push or pop at a time
    PERFORM set_config({{own_ddl}}, 'on', true);
    SELECT array_agg(k.key ORDER BY k.key) INTO captured FROM {{schema}}.tables k
    WHERE EXISTS (SELECT 1 FROM {{schema}}.marks m WHERE m.tbl = k.key);
    IF captured IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(k.key, ', ' ORDER BY k.key) INTO stale FROM {{schema}}.tables k
    WHERE k.key = ANY(captured) AND to_regclass(k.target) IS DISTINCT FROM k.relid;
    IF stale IS NOT NULL THEN
        RAISE EXCEPTION 'dbrewind cannot push a baseline layer: table(s) % were dropped or '
            'created again since the last rewind. Rewind first (Rewinder.rewind()), or '
            'install tracking again.', stale;
    END IF;
    SELECT coalesce(max(l.depth), 0) + 1 INTO layer FROM {{schema}}.layers l;
    FOR t IN SELECT k.key, k.ord, k.truncate_target, k.restore_sql, x.copy_sql, x.restore_head
             FROM {{schema}}.tables k JOIN {{schema}}.table_sql x ON x.key = k.key
             WHERE k.key = ANY(captured) ORDER BY k.ord LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', t.truncate_target) INTO has_rows;
        copy_name := NULL;
        IF has_rows THEN
            copy_name := format('{{schema}}.%I', 'b_' || t.ord || '_' || layer);
            EXECUTE format('CREATE TABLE %s AS %s', copy_name, t.copy_sql);
        END IF;
        INSERT INTO {{schema}}.layers (depth, key, restore_sql, copy_table)
        VALUES (layer, t.key, t.restore_sql, copy_name);
        INSERT INTO {{schema}}.layer_sequences (depth, ref, value, called)
        SELECT layer, s.ref, s.value, s.called FROM {{schema}}.sequences s
        WHERE s.key = t.key;
        UPDATE {{schema}}.tables k SET restore_sql = t.restore_head || copy_name
        WHERE k.key = t.key;
        FOR q IN SELECT s.ref, s.seq FROM {{schema}}.sequences s WHERE s.key = t.key LOOP
            EXECUTE format('SELECT last_value, is_called FROM %s', q.seq)
            INTO last_value, is_called;
            UPDATE {{schema}}.sequences s SET value = last_value, called = is_called
            WHERE s.ref = q.ref;
        END LOOP;
        RETURN NEXT t.key;
    END LOOP;
    DELETE FROM {{schema}}.marks m WHERE m.tbl = ANY(captured);
    PERFORM set_config({{own_ddl}}, '', true);
END
$push$;

CREATE FUNCTION {{schema}}.pop_baseline(
    to_depth integer,
    truncate text[] DEFAULT '{}',
    reset_sequences boolean DEFAULT true,
    lock_timeout text DEFAULT NULL
)
RETURNS TABLE (table_key text, rows_deleted bigint, outcome text)
LANGUAGE plpgsql AS $pop$
-- Layers above to_depth go, highest first: each table gets back the baseline
-- it had below the layer and is marked dirty; then one rewind puts them back.
#variable_conflict use_column
DECLARE
    top integer;
    l record;
BEGIN
    IF lock_timeout IS NOT NULL THEN
        PERFORM set_config('lock_timeout', lock_timeout, true);
    END IF;
    LOCK TABLE {{schema}}.layers IN SHARE ROW EXCLUSIVE MODE;
    PERFORM set_config({{own_ddl}}, 'on', true);
    SELECT coalesce(max(x.depth), 0) INTO top FROM {{schema}}.layers x;
    IF to_depth IS NULL OR to_depth < 0 OR to_depth > top THEN
        RAISE EXCEPTION 'dbrewind cannot pop to baseline layer %: the database has layers 0 to %. '
            'Pass a depth in that range (Installation.depth is the current one).', to_depth, top;
    END IF;
    FOR l IN SELECT x.* FROM {{schema}}.layers x
             WHERE x.depth > to_depth ORDER BY x.depth DESC, x.key LOOP
        UPDATE {{schema}}.tables k SET restore_sql = l.restore_sql WHERE k.key = l.key;
        UPDATE {{schema}}.sequences s SET value = p.value, called = p.called
        FROM {{schema}}.layer_sequences p
        WHERE p.depth = l.depth AND p.ref = s.ref AND s.key = l.key;
        IF l.copy_table IS NOT NULL THEN
            EXECUTE 'DROP TABLE IF EXISTS ' || l.copy_table;
        END IF;
        INSERT INTO {{schema}}.marks (tbl)
        SELECT l.key WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.marks m WHERE m.tbl = l.key);
    END LOOP;
    DELETE FROM {{schema}}.layer_sequences p WHERE p.depth > to_depth;
    DELETE FROM {{schema}}.layers x WHERE x.depth > to_depth;
    PERFORM set_config({{own_ddl}}, '', true);
    RETURN QUERY SELECT r.table_key, r.rows_deleted, r.outcome
                 FROM {{schema}}.rewind(truncate, reset_sequences, false, lock_timeout) r;
END
$pop$;
