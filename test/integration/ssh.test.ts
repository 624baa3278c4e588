import { existsSync } from 'node:fs';
/** The SSH adapter against the sandbox sshd on loopback, with the host key pinned. */
import { utils } from 'ssh2';
import { createSshActivities, runOverSsh, sshTargetFromInventory, type SshTarget } from '../../activities/ssh';
import { resolvePath, resolveSecret } from '../../config/load';
import { netns } from '../helpers/estate';
import { failureType, sandbox } from '../helpers/stack';

describe('SSH adapter (sshd on loopback)', () => {
  const loaded = sandbox();
  const target = (name: string): SshTarget =>
    sshTargetFromInventory(name, loaded.inventory.sshHosts[name], {
      secret: (ref) => resolveSecret(ref, loaded.baseDir),
      path: (p) => resolvePath(loaded.baseDir, p),
    });
  const ssh = createSshActivities(target);

  test('runs a command with the pinned host key', async () => {
    const r = await ssh.runRemoteCommand({ host: 'primary-host', command: 'echo hello-$((6*7))' });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'hello-42\n' });
  });

  test("each host's commands run in its own network namespace", async () => {
    const primary = await ssh.runRemoteCommand({ host: 'primary-host', command: 'ip netns identify $$' });
    const dr = await ssh.runRemoteCommand({ host: 'dr-host', command: 'ip netns identify $$' });
    expect(primary.stdout.trim()).toBe(netns.primary);
    expect(dr.stdout.trim()).toBe(netns.dr);
  });

  test('a non-zero exit is CommandFailed with its stderr', async () => {
    const err = await ssh
      .runRemoteCommand({ host: 'primary-host', command: 'ls /no/such/dir' })
      .catch((e: unknown) => e);
    expect(failureType(err)).toBe('CommandFailed');
    expect((err as Error).message).toMatch(/exited 2: .*No such file/);
    const allowed = await ssh.runRemoteCommand({
      host: 'primary-host',
      command: "echo 'it''s' | grep -q x || exit 3",
      allowFailure: true,
    });
    expect(allowed.exitCode).toBe(3);
  });

  test('a host presenting another key is refused, never learned', async () => {
    const impostorPin = { keys: [utils.generateKeyPairSync('ed25519').public.split(' ')[1]], fingerprints: [] };
    const err = await runOverSsh(
      { ...target('primary-host'), pinned: impostorPin },
      'touch /tmp/drbook-must-not-run',
    ).catch((e: unknown) => e);
    expect(failureType(err)).toBe('HostKeyMismatch');
    expect(existsSync('/tmp/drbook-must-not-run')).toBe(false);
    expect((err as Error).message).toMatch(/presented host key SHA256:\S+, which is not the pinned key/);
    const empty = await runOverSsh({ ...target('primary-host'), pinned: { keys: [], fingerprints: [] } }, 'true').catch(
      (e: unknown) => e,
    );
    expect(failureType(empty)).toBe('HostKeyMismatch');
  });

  test('an unknown client key is SshAuthFailed', async () => {
    const stranger = utils.generateKeyPairSync('ed25519');
    const err = await runOverSsh({ ...target('primary-host'), privateKey: stranger.private }, 'true').catch(
      (e: unknown) => e,
    );
    expect(failureType(err)).toBe('SshAuthFailed');
  });
});
