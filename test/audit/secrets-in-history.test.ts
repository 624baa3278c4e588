/**
 * Runs last (scripts/stack.sh test starts it after every other test): reads every workflow
 * history the suite left on the Temporal server and looks for the secrets the sandbox
 * uses — database, replication and application passwords, the AWS secret key, the SSH
 * private key. Inputs, results, failures and heartbeats are all in the history: none of
 * these values may appear there, in clear or in a payload.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal as proto } from '@temporalio/proto';
import { resolveSecret } from '../../config/load';
import { payloadCodecFromEnv } from '../../workers/codec';
import { ROOT, sandbox, temporal } from '../helpers/stack';

jest.setTimeout(300_000);

/** Every string in a history, and every base64 string decoded (payload data is base64 JSON). */
function texts(value: unknown, out: string[]): void {
  if (typeof value === 'string') {
    out.push(value);
    if (value.length >= 8 && /^[A-Za-z0-9+/]+=*$/.test(value)) out.push(Buffer.from(value, 'base64').toString('utf8'));
  } else if (Array.isArray(value)) value.forEach((v) => texts(v, out));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => texts(v, out));
}

/** With payload encryption on, every sealed payload opened in place: the scan reads what the workflows wrote. */
async function openPayloads(value: unknown, codec: NonNullable<ReturnType<typeof payloadCodecFromEnv>>): Promise<void> {
  if (!value || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const v of value) await openPayloads(v, codec);
    return;
  }
  const obj = value as Record<string, unknown>;
  if (obj.metadata && typeof obj.metadata === 'object' && 'data' in obj) {
    const [opened] = await codec.decode([obj]);
    Object.assign(obj, { metadata: opened.metadata, data: opened.data });
    return;
  }
  for (const v of Object.values(obj)) await openPayloads(v, codec);
}

test('no workflow history holds a secret value', async () => {
  const loaded = sandbox();
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
    for (let i = 0; i + 40 <= body.length; i += 40)
      secrets.set(`sshHosts.${name}.privateKey[${i}]`, body.slice(i, i + 40));
  }
  const dataDir = process.env.DRBOOK_DATA ?? path.join(ROOT, '.data');
  secrets.set('sandbox app password', readFileSync(path.join(dataDir, 'secrets', 'app-password'), 'utf8').trim());
  for (const [where, value] of secrets) expect({ where, long: value.length >= 16 }).toEqual({ where, long: true });

  const t = await temporal(loaded);
  let histories = 0;
  let events = 0;
  const leaks: string[] = [];
  try {
    for await (const run of t.client.workflow.list()) {
      const history = await t.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      const codec = payloadCodecFromEnv();
      if (codec) await openPayloads(history, codec);
      histories++;
      events += history.events?.length ?? 0;
      const haystack: string[] = [];
      texts(
        proto.api.history.v1.History.toObject(proto.api.history.v1.History.fromObject(history), {
          bytes: String,
          longs: String,
        }),
        haystack,
      );
      const all = haystack.join('\n');
      for (const [where, value] of secrets)
        if (all.includes(value)) leaks.push(`${where} in ${run.workflowId} (${run.type})`);
    }
  } finally {
    await t.close();
  }
  console.log(
    `secret scan: ${histories} workflow histories, ${events} events, ${secrets.size} secret values: ${leaks.length} leaks`,
  );
  expect(histories).toBeGreaterThan(10); // the suite ran real runbooks before this
  expect(leaks).toEqual([]);
});
