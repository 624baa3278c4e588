/**
 * Signed approvals (inventory `approvals.policy: signed`): an approval carries an SSH signature
 * (`ssh-keygen -Y sign`, namespace `drbook-approval`) over the run's approval message (workflow id, run id,
 * step, flags: approvalMessage in contract/approvals.ts). It is checked here, on the worker, with
 * `ssh-keygen -Y verify` against the public keys the inventory lists for the named approver, written to an
 * allowed_signers file in a private work directory. The answer names the key that signed (its SHA256
 * fingerprint), so a workflow counts one key once, whatever name it came under.
 */
import { spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { publicKeyBody, type Inventory, APPROVAL_SIGNATURE_NAMESPACE, armorSshSignature } from '../../contract';
import { privateWorkDir } from '../workdirs';

export type SignatureVerdict = { valid: true; key: string } | { valid: false; reason: string };

/** Run a tool with `input` on stdin; its exit code and output (no shell, arguments as given). */
function run(cmd: string, args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

export function createApprovalActivities(inventory: Inventory) {
  return {
    /** Whether `signature` is `approver`'s SSH signature over `message`, by a key the inventory lists for them. */
    async verifyApprovalSignature({
      approver,
      message,
      signature,
    }: {
      approver: string;
      message: string;
      signature: string;
    }): Promise<SignatureVerdict> {
      const keys = inventory.approvers.find((a) => a.name === approver)?.sshKeys ?? [];
      if (!keys.length) return { valid: false, reason: `${approver} has no SSH public key in the inventory` };
      const armored = armorSshSignature(signature);
      if (!armored) return { valid: false, reason: 'the signature is not an SSH signature (ssh-keygen -Y sign)' };
      const dir = await privateWorkDir('approval');
      try {
        const allowed = path.join(dir, 'allowed_signers');
        const sig = path.join(dir, 'approval.sig');
        // Only the key's type and body: the inventory's comment never reaches ssh-keygen's parser.
        const lines = keys.map((k) => `${approver} namespaces="${APPROVAL_SIGNATURE_NAMESPACE}" ${publicKeyBody(k)}`);
        await writeFile(allowed, `${lines.join('\n')}\n`, { mode: 0o600 });
        await writeFile(sig, armored, { mode: 0o600 });
        const args = ['-Y', 'verify', '-f', allowed, '-I', approver, '-n', APPROVAL_SIGNATURE_NAMESPACE, '-s', sig];
        const r = await run('ssh-keygen', args, message);
        const key = /key (SHA256:[A-Za-z0-9+/=]+)/.exec(r.stdout)?.[1];
        if (r.code === 0 && key) return { valid: true, key };
        const why = (r.stderr || r.stdout).trim().split('\n').pop() ?? `exit ${r.code}`;
        return {
          valid: false,
          reason:
            `not a signature by a key listed for ${approver} over this run's approval message ` +
            `(ssh-keygen: ${why})`,
        };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export type ApprovalActivities = ReturnType<typeof createApprovalActivities>;
