-- A portable script: the semicolons in strings and comments must not split it; not here either
CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(200));
/* a block comment; with a semicolon */
INSERT INTO notes (id, body) VALUES (1, 'it''s; fine');
INSERT INTO notes (id, body) VALUES (2, '100% sure :name %s %(x)s');
INSERT INTO notes (id, body)
VALUES (3, 'spans
two lines');   -- trailing comment; ignored
-- a comment-only tail
