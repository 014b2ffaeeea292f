-- dbrewind.mark_ddl() and the dbrewind_ddl event trigger (superuser only): DDL
-- that creates, drops or renames tables leaves the !ddl mark.
-- Placeholders: {{schema}} the tracking schema; {{own_ddl}} the literal name of
-- the setting that marks dbrewind's own DDL; {{ddl_mark}} the literal '!ddl';
-- {{event_trigger}} the event trigger's name; {{ddl_tags}} the command tags, as
-- a list of literals.

CREATE FUNCTION {{schema}}.mark_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $ddl$
BEGIN
    IF coalesce(current_setting({{own_ddl}}, true), '') <> '' THEN
        RETURN;  -- a baseline copy that push_baseline / pop_baseline makes or drops
    END IF;
    INSERT INTO {{schema}}.marks (tbl)
    SELECT {{ddl_mark}}
    WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.marks WHERE tbl = {{ddl_mark}});
END
$ddl$;
CREATE EVENT TRIGGER {{event_trigger}} ON ddl_command_end
    WHEN TAG IN ({{ddl_tags}})
    EXECUTE FUNCTION {{schema}}.mark_ddl();
