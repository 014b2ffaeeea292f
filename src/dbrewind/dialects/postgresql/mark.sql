-- dbrewind.mark(): the statement-level trigger function on every tracked table
-- and partition. Arguments: the table key, and the name of the transaction-local
-- setting dbrewind.seen_<n> that the trigger's WHEN tests.
-- Placeholders: {{schema}} the tracking schema.

CREATE FUNCTION {{schema}}.mark() RETURNS trigger
LANGUAGE plpgsql AS $mark$
BEGIN
    INSERT INTO {{schema}}.marks (tbl)
    SELECT TG_ARGV[0]
    WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.marks WHERE tbl = TG_ARGV[0]);
    -- Transaction-local: reverted at commit, rollback and rollback to savepoint,
    -- exactly like the mark itself; the trigger's WHEN skips later statements.
    PERFORM set_config(TG_ARGV[1], '1', true);
    RETURN NULL;
END
$mark$;
