/**
 * One bootstrap for both local stacks: scripts/stack.sh and docker-compose.yml read the same files
 * (deploy/mariadb/) for the servers' settings, the schema and heartbeat event, the users and replication, and
 * neither writes that SQL or those settings inline. Without an engine: the compose file is read as YAML, the
 * shell files as text, and the init hooks are run against a stand-in for the mariadb image's docker_process_sql.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

const ROOT = path.join(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const SHARED = 'deploy/mariadb';
/** Where compose mounts deploy/mariadb/bootstrap.sh, and where the init hooks look for it by default. */
const MOUNTED_BOOTSTRAP = '/opt/drbook/mariadb';

interface ComposeService {
  volumes?: (string | { type?: string; source?: string; target?: string })[];
}

/** Each MariaDB server's bind mounts in docker-compose.yml: repository path (./x) → container path. */
function composeMounts(): Map<string, Map<string, string>> {
  const doc = YAML.parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
  const servers = new Map<string, Map<string, string>>();
  for (const [name, svc] of Object.entries(doc.services)) {
    if (!/^mariadb-(primary|replica|scratch)$/.test(name)) continue;
    const mounts = new Map<string, string>();
    for (const v of svc.volumes ?? []) {
      const [source, target] = typeof v === 'string' ? v.split(':') : [v.source ?? '', v.target ?? ''];
      if (source.startsWith('./')) mounts.set(path.normalize(source), target);
    }
    servers.set(name, mounts);
  }
  return servers;
}

/** Runs bash with `script`, the password files in a temporary directory; returns stdout. */
function bash(script: string, env: Record<string, string> = {}): string {
  const secrets = mkdtempSync(path.join(os.tmpdir(), 'drbook-bootstrap-'));
  try {
    writeFileSync(path.join(secrets, 'mysql-password'), "pw-with-'quote");
    writeFileSync(path.join(secrets, 'replication-password'), 'repl-pw');
    writeFileSync(path.join(secrets, 'app-password'), 'app-pw');
    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', SECRETS: secrets, DRBOOK_SECRETS_DIR: secrets, ...env },
    });
    if (r.status !== 0) throw new Error(`bash failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  } finally {
    rmSync(secrets, { recursive: true, force: true });
  }
}

test('every compose MariaDB server mounts the shared settings and bootstrap; the primary, the shared schema', () => {
  const servers = composeMounts();
  expect([...servers.keys()].sort()).toEqual(['mariadb-primary', 'mariadb-replica', 'mariadb-scratch']);
  for (const [name, mounts] of servers) {
    expect({ name, cnf: mounts.get(`${SHARED}/drbook.cnf`) }).toEqual({ name, cnf: '/etc/mysql/conf.d/drbook.cnf' });
    expect({ name, bootstrap: mounts.get(`${SHARED}/bootstrap.sh`) }).toEqual({
      name,
      bootstrap: `${MOUNTED_BOOTSTRAP}/bootstrap.sh`,
    });
    expect({ name, users: mounts.get('docker/mariadb/users.sh') }).toEqual({
      name,
      users: expect.stringMatching(/^\/docker-entrypoint-initdb\.d\//) as unknown,
    });
  }
  expect(servers.get('mariadb-primary')!.get(`${SHARED}/schema.sql`)).toMatch(/^\/docker-entrypoint-initdb\.d\//);
  expect(servers.get('mariadb-replica')!.get('docker/mariadb/replica-init.sh')).toMatch(
    /^\/docker-entrypoint-initdb\.d\//,
  );
});

/** scripts/stack.sh and the command groups it sources (scripts/stack/*.sh). */
const STACK_FILES = [
  'scripts/stack.sh',
  ...readdirSync(path.join(ROOT, 'scripts/stack')).map((f) => `scripts/stack/${f}`),
];

test('scripts/stack.sh reads the same files: settings, schema, users, replication', () => {
  const stack = STACK_FILES.map(read).join('\n');
  expect(stack).toMatch(/^MARIADB_BOOTSTRAP=\$ROOT\/deploy\/mariadb$/m);
  expect(stack).toMatch(/^\. "\$MARIADB_BOOTSTRAP\/bootstrap\.sh"$/m);
  expect(stack).toContain('!include $MARIADB_BOOTSTRAP/drbook.cnf');
  expect(stack).toContain('cat "$MARIADB_BOOTSTRAP/schema.sql"');
  expect(stack).toMatch(/drbook_users_sql 127\.0\.0\.1 "\$secrets" \| mariadb_sql/);
  expect(stack).toMatch(/drbook_replica_sql 127\.0\.0\.1 "\$DRBOOK_PRIMARY_PORT" "\$secrets" start \| mariadb_sql/);
});

test('no bootstrap SQL or shared setting is written anywhere but deploy/mariadb/', () => {
  const inline = /CREATE USER|GRANT |CHANGE MASTER|CREATE TABLE|CREATE EVENT|CREATE DATABASE|gtid-strict-mode/i;
  const places = [...STACK_FILES, ...readdirSync(path.join(ROOT, 'docker/mariadb')).map((f) => `docker/mariadb/${f}`)];
  for (const file of places) {
    const lines = read(file)
      .split('\n')
      .map((text, i) => ({ file, line: i + 1, text }))
      .filter(({ text }) => !/^\s*(#|--)/.test(text) && inline.test(text));
    expect(lines).toEqual([]);
  }
});

test("the compose init hooks feed docker_process_sql exactly the stack's SQL, for '%' and the compose source", () => {
  const asEntrypoint = (hook: string) =>
    bash(`docker_process_sql() { cat; }; . docker/mariadb/${hook}`, { DRBOOK_MARIADB_BOOTSTRAP: SHARED });
  const shared = (call: string) => bash(`. ${SHARED}/bootstrap.sh; ${call}`);

  const users = asEntrypoint('users.sh');
  expect(users).toBe(shared(`drbook_users_sql '%' "$SECRETS"`));
  expect(users).toContain("CREATE USER IF NOT EXISTS 'drbook'@'%' IDENTIFIED BY 'pw-with-\\'quote';");
  expect(users).toContain("GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO 'repl'@'%';");

  const replica = asEntrypoint('replica-init.sh');
  expect(replica).toBe(shared('drbook_replica_sql mariadb-primary 3306 "$SECRETS"'));
  expect(replica).toContain("CHANGE MASTER TO MASTER_HOST='mariadb-primary', MASTER_PORT=3306, MASTER_USER='repl',");
  expect(replica).not.toContain('START SLAVE');
  // The host stack starts replication at once; the image's init server runs with --skip-slave-start.
  expect(shared('drbook_replica_sql 127.0.0.1 13306 "$SECRETS" start')).toMatch(
    /MASTER_PORT=13306, [^]*\nSTART SLAVE;\n$/,
  );
});
