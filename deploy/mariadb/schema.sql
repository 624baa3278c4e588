-- The primary's schema, on its first start after the users (deploy/mariadb/bootstrap.sh): scripts/stack.sh's
-- bootstrap_mariadb pipes it in; docker-compose.yml mounts it as an init script of the mariadb image.
-- Binlogged on purpose: the replica gets this schema by replication.
CREATE DATABASE IF NOT EXISTS drbook;
-- pt-heartbeat style: one row per server id, stamped every second by an event; replicated,
-- so on a replica it dates the newest change that replica holds (the RPO clock).
CREATE TABLE IF NOT EXISTS drbook.heartbeat (
  server_id INT UNSIGNED NOT NULL PRIMARY KEY,
  ts TIMESTAMP(6) NOT NULL
) ENGINE=InnoDB;
-- Four stamps a second (the scheduler's smallest interval is 1 s): the RPO clock reads to 250 ms.
DELIMITER //
CREATE DEFINER = 'drbook_heartbeat'@'localhost' EVENT IF NOT EXISTS drbook.heartbeat_tick ON SCHEDULE EVERY 1 SECOND DO
BEGIN
  DECLARE i INT DEFAULT 0;
  -- Only a writable server stamps: a read-only (fenced, or restarted old) primary never does.
  WHILE i < 4 AND @@global.read_only = 0 DO
    INSERT INTO drbook.heartbeat (server_id, ts) VALUES (@@server_id, NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6);
    SET i = i + 1;
    IF i < 4 THEN DO SLEEP(0.25); END IF;
  END WHILE;
END//
DELIMITER ;
CREATE DATABASE IF NOT EXISTS shop;
USE shop;
CREATE TABLE IF NOT EXISTS shop.orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer VARCHAR(64) NOT NULL,
  amount_cents INT NOT NULL,
  source VARCHAR(32) NOT NULL DEFAULT 'seed',
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
INSERT INTO shop.orders (customer, amount_cents)
  SELECT CONCAT('customer-', seq), seq * 100 FROM seq_1_to_1000 WHERE (SELECT COUNT(*) FROM shop.orders) = 0;
