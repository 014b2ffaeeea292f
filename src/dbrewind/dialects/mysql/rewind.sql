-- dbrewind_rewind: the per-test rewind, one CALL. A template for str.format, filled in
-- by tracking._procedure_sql: {create}, {rewind} and {reset} (the names), {marks},
-- {cascade}, {pause}, {stats} and the generated {check} and {dml_case}. This header,
-- up to the first blank line, is not part of it.

{create} {rewind}(
    IN p_truncate LONGBLOB, IN p_skip LONGBLOB, IN p_reset BOOLEAN, IN p_check BOOLEAN,
    IN p_defer BOOLEAN, IN p_lock_timeout INT)
    MODIFIES SQL DATA
    COMMENT 'dbrewind: put dirty tables back to the baseline'
proc: BEGIN
  DECLARE v_max BIGINT UNSIGNED;
  DECLARE v_count BIGINT;
  DECLARE v_sum BIGINT;
  DECLARE v_ai BIGINT UNSIGNED;
  DECLARE v_moved BOOLEAN DEFAULT FALSE;
  DECLARE v_trunc BOOLEAN DEFAULT FALSE;
  DECLARE v_done BOOLEAN DEFAULT FALSE;
  DECLARE v_late BOOLEAN DEFAULT FALSE;
  DECLARE v_emptied BOOLEAN DEFAULT FALSE;
  DECLARE v_schema BOOLEAN DEFAULT FALSE;
  DECLARE v_fk INT DEFAULT @@SESSION.FOREIGN_KEY_CHECKS;
  DECLARE v_lwt BIGINT DEFAULT @@SESSION.lock_wait_timeout;
  DECLARE v_ilwt BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
  DECLARE v_tbl VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
  DECLARE v_out LONGTEXT DEFAULT '';
  DECLARE v_ddl LONGTEXT DEFAULT '';
  DECLARE v_bg LONGTEXT DEFAULT '';
  DECLARE v_lock LONGTEXT DEFAULT '';
  DECLARE v_cur CURSOR FOR
    SELECT m.`tbl` FROM {marks} m WHERE m.`id` <= v_max
    UNION
    SELECT c.`child` FROM {cascade} c
      JOIN {marks} m ON m.`tbl` = c.`parent` WHERE m.`id` <= v_max;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET FOREIGN_KEY_CHECKS = v_fk, lock_wait_timeout = v_lwt, innodb_lock_wait_timeout = v_ilwt;
    SET {pause} = NULL;
    RESIGNAL;
  END;

  {stats}
  IF p_check THEN
    {check}
    IF v_schema THEN
      SELECT 'schema' AS status, NULL AS tables, NULL AS ddl, NULL AS locks, NULL AS upto;
      LEAVE proc;
    END IF;
  ELSE
    SELECT MAX(`id`) INTO v_max FROM {marks};
  END IF;
  IF v_max IS NULL THEN
    LEAVE proc;
  END IF;

  SET {pause} = 1, FOREIGN_KEY_CHECKS = 0;
  IF p_lock_timeout > 0 THEN  -- a lock a leaked transaction holds: fail, not hang
    SET SESSION lock_wait_timeout = p_lock_timeout,
        innodb_lock_wait_timeout = p_lock_timeout;
  END IF;
  START TRANSACTION;
  OPEN v_cur;
  tables: LOOP
    FETCH v_cur INTO v_tbl;
    IF v_done THEN
      LEAVE tables;
    END IF;
    IF INSTR(p_skip, CONCAT(X'00', v_tbl, X'00')) > 0 THEN
      ITERATE tables;
    END IF;
    {dml_case}
  END LOOP;
  CLOSE v_cur;
  SET v_late = v_ddl <> '' OR v_bg <> '';
  IF NOT v_late THEN
    DELETE FROM {marks} WHERE `id` <= v_max;
  END IF;
  COMMIT;
  SET FOREIGN_KEY_CHECKS = v_fk, {pause} = NULL;

  IF v_ddl <> '' THEN
    CALL {reset}(v_ddl);
  END IF;
  SET SESSION lock_wait_timeout = v_lwt, innodb_lock_wait_timeout = v_ilwt;
  IF v_bg <> '' THEN
    -- the caller locks these tables and runs the ALTERs on a second connection
    SELECT 'deferred' AS status, CONCAT('[', SUBSTRING(v_out, 2), ']') AS tables,
           v_bg AS ddl, SUBSTRING(v_lock, 3) AS locks, v_max AS upto;
    LEAVE proc;
  END IF;
  IF v_late THEN
    DELETE FROM {marks} WHERE `id` <= v_max;
  END IF;
  SELECT 'ok' AS status, CONCAT('[', SUBSTRING(v_out, 2), ']') AS tables,
         NULL AS ddl, NULL AS locks, NULL AS upto;
END proc
