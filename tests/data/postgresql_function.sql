/* nested /* comments */ are fine on PostgreSQL; */
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
CREATE FUNCTION add_note(b text) RETURNS integer AS $$
BEGIN
  INSERT INTO notes (id, body) VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM notes), b || ';');
  RETURN 1;
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION tagged() RETURNS text AS $body$ SELECT 'a;b $$ c'::text $body$ LANGUAGE sql;
SELECT add_note(tagged());
INSERT INTO notes (id, body) VALUES (100, E'back\\slash\'; quote');
