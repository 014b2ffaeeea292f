INSERT INTO notes (id, body) VALUES (50, 'ok');

INSERT INTO no_such_table_here (id) VALUES (1);
