/**
 * Benchmark databases on the stack's primary, generated server-side with INSERT … SELECT from
 * MariaDB's sequence engine (seq_1_to_N): no rows cross the network, so 1 GB takes a minute or
 * two, not an hour. Four tables with the mixed columns a shop has (integers, decimals, dates,
 * short and long strings, JSON-ish text), compressible the way real data is: partly repetitive,
 * partly hashes. Written with sql_log_bin = 0, so the benchmark data never reaches the replica
 * or the binlog (it is dropped afterwards). A database is reused when its `_bench` marker says
 * it was completed at the same scale.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';

/** Rows per table at scale 1 (about 1.1 GB of dump text, about 1.3 GB in InnoDB). */
const ROWS = { customers: 1_000_000, orders: 2_000_000, order_items: 3_000_000, events: 600_000 };
const CHUNK = 250_000;

const ident = (s: string) => `\`${s.replace(/`/g, '``')}\``;

const SCHEMA = [
  `CREATE TABLE customers (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    email VARCHAR(120) NOT NULL,
    name VARCHAR(80) NOT NULL,
    country CHAR(2) NOT NULL,
    balance DECIMAL(12,2) NOT NULL,
    created_at DATETIME NOT NULL,
    notes TEXT NULL,
    KEY (email)
  ) ENGINE=InnoDB`,
  `CREATE TABLE orders (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    customer_id BIGINT UNSIGNED NOT NULL,
    status ENUM('new','paid','shipped','delivered','refunded') NOT NULL,
    total_cents INT NOT NULL,
    currency CHAR(3) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    shipping_address VARCHAR(255) NOT NULL,
    KEY (customer_id)
  ) ENGINE=InnoDB`,
  `CREATE TABLE order_items (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    order_id BIGINT UNSIGNED NOT NULL,
    sku VARCHAR(32) NOT NULL,
    qty SMALLINT UNSIGNED NOT NULL,
    price_cents INT NOT NULL,
    description VARCHAR(200) NOT NULL,
    KEY (order_id)
  ) ENGINE=InnoDB`,
  `CREATE TABLE events (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP(6) NOT NULL
  ) ENGINE=InnoDB`,
];

/** One INSERT … SELECT per table and chunk; `s` is the sequence value (the row id). */
const FILL: Record<keyof typeof ROWS, string> = {
  customers: `INSERT INTO customers SELECT s.seq,
      CONCAT('user', s.seq, '@',
        ELT(1 + s.seq % 5, 'example.com', 'mail.test', 'shop.example', 'corp.test', 'web.example')),
      CONCAT(ELT(1 + s.seq % 7, 'Ana', 'Ben', 'Chen', 'Dara', 'Emil', 'Fatima', 'Goran'), ' ',
        ELT(1 + (s.seq DIV 7) % 6, 'Silva', 'Meyer', 'Okafor', 'Novak', 'Haddad', 'Tanaka')),
      ELT(1 + s.seq % 8, 'US', 'DE', 'FR', 'BR', 'JP', 'IN', 'NG', 'GB'), (s.seq % 100000) / 7,
      '2020-01-01' + INTERVAL (s.seq % 150000000) SECOND,
      IF(s.seq % 3 = 0, NULL,
        CONCAT('prefers ', ELT(1 + s.seq % 3, 'email', 'sms', 'post'), '; ref ', MD5(s.seq), '; ',
          REPEAT('loyal ', s.seq % 4)))`,
  orders: `INSERT INTO orders SELECT s.seq, 1 + (s.seq * 7919) % @customers, 1 + s.seq % 5, 100 + (s.seq * 31) % 50000,
      ELT(1 + s.seq % 3, 'USD', 'EUR', 'BRL'),
      '2021-01-01' + INTERVAL (s.seq * 13) SECOND + INTERVAL (s.seq % 999983) MICROSECOND,
      CONCAT(s.seq % 9999, ' ',
        ELT(1 + s.seq % 6, 'Main St', 'Oak Ave', 'Rua Augusta', 'Hauptstrasse', 'Rue de Rivoli', 'MG Road'), ', ',
        LEFT(SHA1(s.seq), 8), ', ', ELT(1 + s.seq % 4, 'Springfield', 'Berlin', 'Lagos', 'Osaka'))`,
  order_items: `INSERT INTO order_items SELECT s.seq, 1 + s.seq DIV 2, CONCAT('SKU-', LPAD(s.seq % 50000, 6, '0')),
      1 + s.seq % 5, 99 + (s.seq * 17) % 20000,
      CONCAT(ELT(1 + s.seq % 5, 'Blue', 'Large', 'Organic', 'Refurbished', 'Limited'), ' ',
        ELT(1 + s.seq % 6, 'widget', 'mug', 'lamp', 'backpack', 'notebook', 'charger'), ' #', LEFT(MD5(s.seq), 6))`,
  events: `INSERT INTO events SELECT s.seq, ELT(1 + s.seq % 4, 'page_view', 'add_to_cart', 'checkout', 'login'),
      CONCAT('{"session":"', MD5(s.seq), '","path":"/',
        ELT(1 + s.seq % 5, 'home', 'cart', 'product/', 'search?q=', 'account'), s.seq % 1000,
        '","ua":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","ip":"10.', s.seq % 256, '.',
        (s.seq DIV 256) % 256, '.', s.seq % 250, '","trace":"', SHA2(s.seq, 256), '"}'),
      '2024-01-01' + INTERVAL (s.seq * 3) SECOND`,
};

export interface BenchDatabase {
  name: string;
  scale: number;
  /** null when an existing, complete database was reused. */
  generatedSeconds: number | null;
  /** InnoDB data + index bytes (information_schema). */
  storedBytes: number;
  rows: number;
}

async function sizeOf(conn: Connection, name: string): Promise<{ storedBytes: number; rows: number }> {
  await conn.query(
    `ANALYZE TABLE ${Object.keys(ROWS)
      .map((t) => `${ident(name)}.${t}`)
      .join(', ')}`,
  );
  const [r] = await conn.query<RowDataPacket[]>(
    'SELECT SUM(DATA_LENGTH + INDEX_LENGTH) AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
    [name],
  );
  const rows = Object.values(ROWS).reduce((a, b) => a + b, 0);
  return { storedBytes: Number(r[0].b), rows };
}

/** Create `name` at `scale` unless a complete one is there. */
export async function ensureBenchDatabase(
  conn: Connection,
  name: string,
  scale: number,
  log: (s: string) => void,
): Promise<BenchDatabase> {
  const rows = Object.fromEntries(Object.entries(ROWS).map(([t, n]) => [t, Math.round(n * scale)])) as typeof ROWS;
  const total = Object.values(rows).reduce((a, b) => a + b, 0);
  try {
    const [m] = await conn.query<RowDataPacket[]>(`SELECT scale, complete FROM ${ident(name)}._bench`);
    if (m[0] && Number(m[0].scale) === scale && Number(m[0].complete) === 1) {
      const s = await sizeOf(conn, name);
      return { name, scale, generatedSeconds: null, storedBytes: s.storedBytes, rows: total };
    }
  } catch {
    // absent: generate
  }
  log(`generating ${name} (scale ${scale}, ${total.toLocaleString()} rows) with INSERT … SELECT FROM seq_…`);
  const started = Date.now();
  await conn.query('SET SESSION sql_log_bin = 0');
  await conn.query(`DROP DATABASE IF EXISTS ${ident(name)}`);
  await conn.query(`CREATE DATABASE ${ident(name)}`);
  await conn.query(`USE ${ident(name)}`);
  for (const ddl of SCHEMA) await conn.query(ddl);
  await conn.query('CREATE TABLE _bench (scale DOUBLE NOT NULL, complete TINYINT NOT NULL) ENGINE=InnoDB');
  await conn.query('SET @customers = ?', [rows.customers]);
  // Bulk-load settings for this session only: checks are redundant for generated, unique ids.
  await conn.query('SET SESSION unique_checks = 0, foreign_key_checks = 0');
  for (const table of Object.keys(ROWS) as (keyof typeof ROWS)[]) {
    for (let lo = 1; lo <= rows[table]; lo += CHUNK) {
      const hi = Math.min(rows[table], lo + CHUNK - 1);
      await conn.query(`${FILL[table]} FROM seq_${lo}_to_${hi} AS s`);
    }
    log(`  ${name}.${table}: ${rows[table].toLocaleString()} rows (${Math.round((Date.now() - started) / 1000)} s)`);
  }
  await conn.query('INSERT INTO _bench VALUES (?, 1)', [scale]);
  await conn.query('SET SESSION sql_log_bin = 1');
  const generatedSeconds = (Date.now() - started) / 1000;
  const s = await sizeOf(conn, name);
  return { name, scale, generatedSeconds, storedBytes: s.storedBytes, rows: total };
}

/** Drop a benchmark database without writing the binlog (it never reached the replica). */
export async function dropBenchDatabase(conn: Connection, name: string): Promise<void> {
  await conn.query('SET SESSION sql_log_bin = 0');
  await conn.query(`DROP DATABASE IF EXISTS ${ident(name)}`);
  await conn.query('SET SESSION sql_log_bin = 1');
}
