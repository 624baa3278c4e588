-- The cold service `wiki` on the host stack's scratch server (no standby: its failover restores a backup into
-- cold-dr): scripts/stack.sh's bootstrap_mariadb pipes it in on the server's first start. The compose stack's
-- inventory (config/compose.yaml) has no wiki.
CREATE DATABASE IF NOT EXISTS wiki;
USE wiki;
CREATE TABLE IF NOT EXISTS wiki.pages (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  body TEXT NOT NULL
) ENGINE=InnoDB;
INSERT INTO wiki.pages (title, body)
  SELECT CONCAT('page-', seq), REPEAT('wiki text ', 20) FROM seq_1_to_200 WHERE (SELECT COUNT(*) FROM wiki.pages) = 0;
