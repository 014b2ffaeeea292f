-- The mark saying dbrewind created the database: written when it creates the file
-- (through a plain sqlite3 connection) and by SQLiteDialect.mark_created. The
-- uninstall keeps it.

CREATE TABLE IF NOT EXISTS "dbrewind_meta" (key TEXT PRIMARY KEY, value TEXT);
INSERT OR REPLACE INTO "dbrewind_meta" (key, value) VALUES ('created_by', 'dbrewind');
