CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE notes_log (note_id INTEGER, what TEXT);
CREATE TRIGGER "log notes" AFTER INSERT ON notes
BEGIN
  INSERT INTO notes_log (note_id, what) VALUES (new.id, 'insert;');
  INSERT INTO notes_log (note_id, what) VALUES (new.id, CASE WHEN new.body = 'x' THEN 'x' ELSE 'other' END);
END;
INSERT INTO notes (id, body) VALUES (1, 'x');
