/**
 * The sandbox's secret values (database, replication and application passwords, the AWS secret
 * key, the SSH private key in 40-character runs, the webhook URLs and their token) and a search for
 * them in a workflow history: every string, and every base64 string decoded (payload data is base64
 * JSON). Used by the audit of the suite's histories and by scripts/record-histories.ts before it writes a fixture.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal as proto } from '@temporalio/proto';
import { resolveSecret, type LoadedInventory } from '../../config/load';
import { ROOT } from './stack';

/**
 * The webhooks' URLs (secret references: they carry a token) and the sandbox's token alone: in no history, log or
 * argv either.
 */
export function webhookSecrets(loaded: LoadedInventory): Map<string, string> {
  const inv = loaded.inventory;
  const secrets = new Map<string, string>();
  for (const n of inv.notifications)
    if (n.kind === 'webhook') secrets.set(`notifications.${n.name}.url`, resolveSecret(n.url, loaded.baseDir));
  for (const svc of inv.services)
    if (svc.applicationWebhook)
      secrets.set(`services.${svc.name}.applicationWebhook`, resolveSecret(svc.applicationWebhook, loaded.baseDir));
  const dataDir = process.env.DRBOOK_DATA ?? path.join(ROOT, '.data');
  secrets.set('sandbox webhook token', readFileSync(path.join(dataDir, 'secrets', 'webhook-token'), 'utf8').trim());
  return secrets;
}

/** Where each secret comes from → its value. */
export function sandboxSecrets(loaded: LoadedInventory): Map<string, string> {
  const inv = loaded.inventory;
  const secrets = new Map<string, string>();
  for (const [name, s] of Object.entries(inv.mysqlServers))
    secrets.set(`mysqlServers.${name}.password`, resolveSecret(s.password, loaded.baseDir));
  for (const svc of inv.services) {
    const repl = svc.database?.replication;
    if (repl) secrets.set(`services.${svc.name}.replication.password`, resolveSecret(repl.password, loaded.baseDir));
  }
  if (inv.aws.secretAccessKey)
    secrets.set('aws.secretAccessKey', resolveSecret(inv.aws.secretAccessKey, loaded.baseDir));
  for (const [name, h] of Object.entries(inv.sshHosts)) {
    // Any 40-character run of the key's body would be enough to leak it.
    const body = resolveSecret(h.privateKey, loaded.baseDir)
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join('');
    // The first 128 characters (96 bytes) are the format header, the same in every unencrypted OpenSSH key,
    // and an ed25519 key's public half: not secret (a fingerprint may be shown), so the runs start after them.
    for (let i = 128; i + 40 <= body.length; i += 40)
      secrets.set(`sshHosts.${name}.privateKey[${i}]`, body.slice(i, i + 40));
  }
  const dataDir = process.env.DRBOOK_DATA ?? path.join(ROOT, '.data');
  secrets.set('sandbox app password', readFileSync(path.join(dataDir, 'secrets', 'app-password'), 'utf8').trim());
  for (const [where, value] of webhookSecrets(loaded)) secrets.set(where, value);
  return secrets;
}

/** Every string in a history, and every base64 string decoded (payload data is base64 JSON). */
function texts(value: unknown, out: string[]): void {
  if (typeof value === 'string') {
    out.push(value);
    if (value.length >= 8 && /^[A-Za-z0-9+/]+=*$/.test(value)) out.push(Buffer.from(value, 'base64').toString('utf8'));
  } else if (Array.isArray(value)) value.forEach((v) => texts(v, out));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => texts(v, out));
}

/** The names of the secrets found in `history` (a fetched history or one parsed from its JSON form). */
export function secretsIn(history: unknown, secrets: Map<string, string>): string[] {
  const haystack: string[] = [];
  texts(
    proto.api.history.v1.History.toObject(
      proto.api.history.v1.History.fromObject(history as proto.api.history.v1.IHistory),
      { bytes: String, longs: String },
    ),
    haystack,
  );
  const all = haystack.join('\n');
  return [...secrets].filter(([, value]) => all.includes(value)).map(([where]) => where);
}
