/**
 * Runs last (scripts/stack.sh test starts it after every other test): reads every workflow
 * history the suite left on the Temporal server and looks for the secrets the sandbox
 * uses — database, replication and application passwords, the AWS secret key, the SSH
 * private key, the webhook URLs and their token. Inputs, results, failures and heartbeats are all in the history: none
 * of these values may appear there, in clear or in a payload.
 */
import { payloadCodecFromEnv } from '../../contract/codec';
import { sandboxSecrets, secretsIn } from '../helpers/secrets';
import { sandbox, temporal } from '../helpers/stack';

jest.setTimeout(300_000);

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
  const secrets = sandboxSecrets(loaded);
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
      for (const where of secretsIn(history, secrets)) leaks.push(`${where} in ${run.workflowId} (${run.type})`);
    }
  } finally {
    await t.close();
  }
  console.log(
    `secret scan: ${histories} workflow histories, ${events} events, ${secrets.size} secret ` +
      `values: ${leaks.length} leaks`,
  );
  expect(histories).toBeGreaterThan(10); // the suite ran real runbooks before this
  expect(leaks).toEqual([]);
});
