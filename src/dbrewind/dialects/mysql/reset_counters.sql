-- dbrewind_reset_counters: runs the DDL tokens the rewind collected (T<n>: TRUNCATE,
-- A<n>: ALTER TABLE .. AUTO_INCREMENT). A template for str.format, filled in by
-- tracking._procedure_sql: {create}, {reset} (the name), {pause}, {stats} and the
-- generated {ddl_case}. This header, up to the first blank line, is not part of it.

{create} {reset}(IN p_ddl LONGTEXT)
    MODIFIES SQL DATA
    COMMENT 'dbrewind: put AUTO_INCREMENT counters back after a rewind'
BEGIN
  DECLARE v_ai BIGINT UNSIGNED;
  DECLARE v_tok VARCHAR(32);
  DECLARE v_ddl LONGTEXT DEFAULT p_ddl;
  DECLARE v_fk INT DEFAULT @@SESSION.FOREIGN_KEY_CHECKS;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    SET FOREIGN_KEY_CHECKS = v_fk;
    SET {pause} = NULL;
    RESIGNAL;
  END;

  {stats}
  SET {pause} = 1, FOREIGN_KEY_CHECKS = 0;
  WHILE v_ddl <> '' DO
    SET v_tok = SUBSTRING_INDEX(v_ddl, ',', 1);
    SET v_ddl = SUBSTRING(v_ddl, LENGTH(v_tok) + 2);
    {ddl_case}
  END WHILE;
  SET FOREIGN_KEY_CHECKS = v_fk, {pause} = NULL;
END
