# MySQL comment; with a semicolon
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
DELIMITER //
CREATE PROCEDURE add_note(IN b TEXT)
BEGIN
  INSERT INTO notes (id, body) VALUES (1, CONCAT(b, ';'));
END //
DELIMITER ;
CALL add_note('first');
INSERT INTO notes (id, body) VALUES (100, 'back\\slash\'; quote');
