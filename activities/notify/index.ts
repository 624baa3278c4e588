/**
 * Notifications: the application's failover webhook (so it reconnects to the new
 * primary) and people (webhook and SNS targets from the inventory). Every call carries
 * an idempotency key, so a receiver can drop the duplicate a retried activity may send.
 */
import type { Inventory } from '../../config/inventory';
import { ErrorType } from '../../workflows/contract';
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

export function createNotifyActivities(inventory: Inventory, sns: Pick<AwsFailoverActivities, 'publishSns'>) {
  return {
    /** Tell the application where its primary database now is. */
    async callApplicationWebhook({
      url,
      service,
      primary,
      idempotencyKey,
    }: {
      url: string;
      service: string;
      primary: { server: string; host: string; port: number };
      idempotencyKey: string;
    }): Promise<{ url: string; status: number }> {
      const { status } = await postJson(
        `application webhook of ${service}`,
        url,
        { service, primary, idempotencyKey },
        idempotencyKey,
      );
      return { url, status };
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
        const { status } = await postJson(
          `webhook ${target}`,
          t.url,
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
