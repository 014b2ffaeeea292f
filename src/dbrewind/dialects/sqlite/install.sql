-- The tables of a tracking installation, created empty by the install (see the
-- package docstring for what each holds):
--   dbrewind_marks      one row per table written to since the last rewind
--   dbrewind_tables     the registry: baseline copy, restore INSERT, counter per table
--   dbrewind_state      PRAGMA schema_version as of the install or the last rewind
--   dbrewind_lifecycle  the lifecycle's key/value state; TEXT affinity, so a value
--                       such as '007' is kept as written, never made a number
--   dbrewind_layers     the registry entries the baseline layers replaced

CREATE TABLE "dbrewind_marks" (tbl TEXT PRIMARY KEY);
CREATE TABLE "dbrewind_tables" (tbl TEXT PRIMARY KEY, baseline TEXT, restore_sql TEXT, seq INTEGER, auto_increment INTEGER NOT NULL, user_triggers INTEGER NOT NULL DEFAULT 0);
CREATE TABLE "dbrewind_state" (key TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE "dbrewind_lifecycle" (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE "dbrewind_layers" (depth INTEGER NOT NULL, tbl TEXT NOT NULL, layer_copy TEXT, baseline TEXT, restore_sql TEXT, seq INTEGER, PRIMARY KEY (depth, tbl));
