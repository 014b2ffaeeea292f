-- dbrewind.rewind(..): reads the marks and puts the dirty tables back, in the
-- one statement that calls it. Rendered per installation by
-- tracking.rewind_function().
-- Placeholders: {{schema}} the tracking schema; {{tag}} the dollar quote of the
-- body (one that occurs in no user schema's name); {{quick_exit}} the early
-- RETURN when nothing is marked (empty when no event trigger reports DDL);
-- {{compare}} the condition to compare the table list with the baseline's;
-- {{schemas}} the user schemas, as a text[] expression; {{ddl_mark}} the
-- literal '!ddl'.

CREATE FUNCTION {{schema}}.rewind(
    truncate text[] DEFAULT '{}',
    reset_sequences boolean DEFAULT true,
    keep_replica boolean DEFAULT false,
    lock_timeout text DEFAULT NULL
)
RETURNS TABLE (table_key text, rows_deleted bigint, outcome text)
LANGUAGE plpgsql AS {{tag}}
#variable_conflict use_column
DECLARE
    marked text[];
    dirty text[];
    grown text[];
    changed text[];
    gone text[];
    born text[];
    back text[];
    back_oids oid[];
    trunc text[];
    kept text[];
    old_role text;
    t record;
    n bigint;
BEGIN
    SELECT array_agg(DISTINCT m.tbl) INTO marked FROM {{schema}}.marks m;
    {{quick_exit}}
    -- Initialised here, not in DECLARE: nothing dirty costs no more than the check above.
    marked := coalesce(marked, '{}');
    gone := '{}';
    born := '{}';
    back := '{}';
    back_oids := '{}';

    IF {{compare}} THEN
        -- The same two queries as when tables are only ever dropped or created...
        SELECT array_agg(k.key ORDER BY k.key) INTO changed
        FROM {{schema}}.tables k WHERE to_regclass(k.target) IS DISTINCT FROM k.relid;
        SELECT coalesce(array_agg(nm.nspname || '.' || c.relname ORDER BY 1), '{}') INTO born
        FROM pg_class c JOIN pg_namespace nm ON nm.oid = c.relnamespace
        WHERE nm.nspname = ANY({{schemas}})
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM {{schema}}.tables k WHERE k.relid = c.oid);
        IF changed IS NOT NULL THEN
            -- ...then, by name: gone when no table has the name any more, back when
            -- another table has it (not created, then); a tracked table renamed away
            -- is created under its new name.
            SELECT coalesce(array_agg(k.key ORDER BY k.key) FILTER (WHERE c.oid IS NULL), '{}'),
                   coalesce(array_agg(k.key ORDER BY k.key) FILTER (WHERE c.oid IS NOT NULL),
                            '{}'),
                   coalesce(array_agg(c.oid ORDER BY k.key) FILTER (WHERE c.oid IS NOT NULL),
                            '{}')
            INTO gone, back, back_oids
            FROM {{schema}}.tables k
            LEFT JOIN pg_class c ON c.oid = to_regclass(k.target) AND c.relkind IN ('r', 'p')
            WHERE k.key = ANY(changed);
            SELECT coalesce(array_agg(x.key ORDER BY x.key), '{}') INTO born FROM (
                SELECT nm.nspname || '.' || c.relname AS key
                FROM pg_class c JOIN pg_namespace nm ON nm.oid = c.relnamespace
                WHERE nm.nspname = ANY({{schemas}})
                  AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                  AND NOT c.oid = ANY(back_oids)
                  AND NOT EXISTS (SELECT 1 FROM {{schema}}.tables k
                                  WHERE k.relid = c.oid AND NOT k.key = ANY(changed))
            ) x;
        END IF;
    END IF;

    IF cardinality(back) > 0 THEN  -- rewound like a dirty table
        marked := marked || back;
    END IF;
    SELECT array_agg(k.key) INTO dirty
    FROM {{schema}}.tables k WHERE k.key = ANY(marked) AND NOT k.key = ANY(gone);

    IF dirty IS NOT NULL THEN
        -- A test database need not wait for its WAL flush: a crash loses only the rewind.
        PERFORM set_config('synchronous_commit', 'off', true);
        IF lock_timeout IS NOT NULL THEN  -- a lock a leaked transaction holds: fail, not hang
            PERFORM set_config('lock_timeout', lock_timeout, true);
        END IF;
        old_role := current_setting('session_replication_role');
        IF old_role = 'replica' THEN
            NULL;
        ELSIF has_parameter_privilege('session_replication_role', 'SET') THEN
            PERFORM set_config('session_replication_role', 'replica', NOT keep_replica);
        ELSE
            -- FK checks stay on: take along every table that references a
            -- dirty one; deletes go children first, restores parents first.
            old_role := NULL;
            LOOP
                SELECT array_agg(DISTINCT r.x) INTO grown FROM (
                    SELECT unnest(dirty) AS x
                    UNION SELECT unnest(k.referenced_by) FROM {{schema}}.tables k WHERE k.key = ANY(dirty)
                ) r
                WHERE EXISTS (SELECT 1 FROM {{schema}}.tables k WHERE k.key = r.x)
                  AND NOT r.x = ANY(gone);
                EXIT WHEN cardinality(grown) = cardinality(dirty);
                dirty := grown;
            END LOOP;
            SET CONSTRAINTS ALL DEFERRED;
        END IF;

        -- Tables created again under their name: tracking back first, each on its own,
        -- so one whose baseline no longer fits is reported and the rest still rewound.
        IF cardinality(back) > 0 THEN
            FOR t IN SELECT b.key, b.oid FROM unnest(back, back_oids) AS b(key, oid) LOOP
                BEGIN
                    PERFORM {{schema}}.track_again(t.key, t.oid);
                EXCEPTION
                    WHEN lock_not_available OR query_canceled THEN RAISE;
                    WHEN OTHERS THEN
                        gone := gone || t.key;
                        back := array_remove(back, t.key);
                        dirty := array_remove(dirty, t.key);
                END;
            END LOOP;
        END IF;

        -- TRUNCATE only tables whose referencing tables are all truncated with them.
        IF cardinality(truncate) > 0 THEN
            SELECT coalesce(array_agg(k.key), '{}') INTO trunc FROM {{schema}}.tables k
            WHERE k.key = ANY(dirty) AND k.key = ANY(truncate);
            LOOP
                SELECT coalesce(array_agg(k.key), '{}') INTO kept FROM {{schema}}.tables k
                WHERE k.key = ANY(trunc) AND k.referenced_by <@ trunc;
                EXIT WHEN cardinality(kept) = cardinality(trunc);
                trunc := kept;
            END LOOP;
            IF cardinality(trunc) > 0 THEN
                EXECUTE 'TRUNCATE ' || (SELECT string_agg(k.truncate_target, ', ')
                                        FROM {{schema}}.tables k WHERE k.key = ANY(trunc));
            END IF;
        ELSE
            trunc := '{}';
        END IF;

        FOR t IN SELECT k.key, k.delete_sql, k.key = ANY(trunc) AS truncated
                 FROM {{schema}}.tables k WHERE k.key = ANY(dirty) ORDER BY k.ord LOOP
            IF t.truncated THEN
                table_key := t.key; rows_deleted := -1; outcome := 'truncated';
            ELSE
                EXECUTE t.delete_sql;
                GET DIAGNOSTICS n = ROW_COUNT;
                table_key := t.key; rows_deleted := n; outcome := 'deleted';
            END IF;
            RETURN NEXT;
        END LOOP;

        FOR t IN SELECT k.restore_sql FROM {{schema}}.tables k
                 WHERE k.key = ANY(dirty) AND k.restore_sql IS NOT NULL
                 ORDER BY k.ord DESC LOOP
            EXECUTE t.restore_sql;
        END LOOP;
        -- Static SQL (a cached plan), not EXECUTE: this runs on every rewind.
        IF reset_sequences THEN
            PERFORM setval(q.seq, q.value, q.called)
            FROM {{schema}}.sequences q WHERE q.key = ANY(dirty);
        END IF;

        IF old_role IS NOT NULL AND old_role <> 'replica' AND NOT keep_replica THEN
            PERFORM set_config('session_replication_role', old_role, true);
        END IF;
    END IF;

    -- Keep the DDL mark while the table list differs from the baseline's,
    -- so every rewind reports the difference until it is resolved.
    DELETE FROM {{schema}}.marks m
    WHERE (m.tbl = ANY(marked) OR m.tbl = ANY(dirty))
      AND NOT (m.tbl = {{ddl_mark}} AND cardinality(gone) + cardinality(born) > 0);

    IF cardinality(gone) + cardinality(born) + cardinality(back) > 0 THEN
        RETURN QUERY
            SELECT g.key, 0::bigint, 'dropped' FROM unnest(gone) AS g(key)
            UNION ALL
            SELECT b.key, 0::bigint, 'created' FROM unnest(born) AS b(key)
            UNION ALL
            SELECT r.key, 0::bigint, 'recreated' FROM unnest(back) AS r(key);
    END IF;
END
{{tag}};
