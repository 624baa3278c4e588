/**
 * Notifications: the application's failover webhook (so it reconnects to the new
 * primary) and people (webhook and SNS targets from the inventory). Every call carries
 * an idempotency key, so a receiver can drop the duplicate a retried activity may send.
 */
import { type Inventory, type SecretRef, ErrorType } from '../../contract';
import { resolveWebhookUrl } from '../../config/load';
import { failure } from '../errors';
import type { AwsFailoverActivities } from '../aws/failover';

export interface NotificationReceipt {
  target: string;
  kind: 'webhook' | 'sns';
  receipt: string;
}

/**
 * POST to a webhook. Its URL often carries a token (Slack, PagerDuty, a signed path), so failures name the webhook
 * (`what`), its status and the network error's code, never the URL or the receiver's body (a 404 page echoes the
 * path): a failure message lands in workflow history and in operators' alerts.
 */
async function postJson(
  what: string,
  url: string,
  body: unknown,
  idempotencyKey: string,
): Promise<{ status: number; text: string }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw failure(ErrorType.WebhookUnreachable, `${what} unreachable: ${cause}`, { webhook: what });
  }
  const text = await res.text();
  if (res.status >= 400 && res.status < 500 && res.status !== 429) {
    throw failure(ErrorType.NotConfigured, `${what} failed: HTTP ${res.status}`, { webhook: what, status: res.status });
  }
  if (!res.ok)
    throw failure(ErrorType.WebhookFailed, `${what} failed: HTTP ${res.status}`, { webhook: what, status: res.status });
  return { status: res.status, text };
}

/**
 * Webhook URLs are secret references in the inventory (they carry tokens): resolved here, on the worker, by the
 * target's or service's name, so no workflow input, result or history ever holds one. `baseDir` resolves `{ file }`.
 */
export function createNotifyActivities(
  inventory: Inventory,
  sns: Pick<AwsFailoverActivities, 'publishSns'>,
  baseDir: string,
) {
  const urlOf = (ref: SecretRef, what: string): string => {
    try {
      return resolveWebhookUrl(ref, baseDir, what);
    } catch (err) {
      throw failure(ErrorType.NotConfigured, (err as Error).message, { webhook: what });
    }
  };
  return {
    /**
     * Tell the application where its primary database now is, at the service's `applicationWebhook` (resolved
     * here). Runs recorded before webhook URLs were secrets passed a `url`: it is ignored, the inventory's is used.
     */
    async callApplicationWebhook({
      service,
      primary,
      idempotencyKey,
    }: {
      service: string;
      primary: { server: string; host: string; port: number };
      idempotencyKey: string;
    }): Promise<{ webhook: string; status: number }> {
      const what = `application webhook of ${service}`;
      const svc = inventory.services.find((s) => s.name === service);
      if (!svc) throw failure(ErrorType.UnknownService, `unknown service "${service}"`, { service });
      if (!svc.applicationWebhook)
        throw failure(ErrorType.NotConfigured, `service ${service} has no applicationWebhook in the inventory`);
      const url = urlOf(svc.applicationWebhook, what);
      const { status } = await postJson(what, url, { service, primary, idempotencyKey }, idempotencyKey);
      return { webhook: what, status };
    },

    /** One notification to one inventory target (one activity per target: each is recorded, retried alone). */
    async notifyTarget({
      target,
      subject,
      message,
      idempotencyKey,
    }: {
      target: string;
      subject: string;
      message: string;
      idempotencyKey: string;
    }): Promise<NotificationReceipt> {
      const t = inventory.notifications.find((n) => n.name === target);
      if (!t) throw failure(ErrorType.ResourceNotFound, `notification target "${target}" is not in the inventory`);
      if (t.kind === 'webhook') {
        const what = `webhook ${target}`;
        const { status } = await postJson(
          what,
          urlOf(t.url, what),
          { subject, message, idempotencyKey },
          idempotencyKey,
        );
        return { target, kind: 'webhook', receipt: `HTTP ${status}` };
      }
      const { messageId } = await sns.publishSns({ region: t.region, topicArn: t.topicArn, subject, message });
      return { target, kind: 'sns', receipt: messageId };
    },
  };
}

export type NotifyActivities = ReturnType<typeof createNotifyActivities>;
