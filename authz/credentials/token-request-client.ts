/**
 * @module authz/credentials/token-request-client
 * Calls kube-apiserver's TokenRequest API (`POST .../serviceaccounts/NAME/token`) over TLS that verifies the
 * cluster CA; the minted token is returned to the caller only, never logged.
 */
import { request } from "node:https";

export interface MintedToken {
  readonly token: string;
  readonly expiresAtMs: number;
}

export interface TokenRequestTarget {
  readonly apiServerUrl: string;
  readonly ca: Buffer;
  readonly gatewayToken: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly expirationSeconds: number;
  readonly audiences: readonly string[];
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** Kubernetes object names in a URL path: DNS-1123 labels/subdomains only, so nothing needs escaping. */
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export async function mintServiceAccountToken(target: TokenRequestTarget): Promise<MintedToken> {
  if (!DNS_NAME.test(target.namespace) || !DNS_NAME.test(target.serviceAccount)) {
    throw new Error(`invalid ServiceAccount reference ${target.namespace}/${target.serviceAccount}`);
  }
  const url = new URL(
    `/api/v1/namespaces/${target.namespace}/serviceaccounts/${target.serviceAccount}/token`,
    target.apiServerUrl,
  );
  const body = JSON.stringify({
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenRequest",
    spec: { expirationSeconds: target.expirationSeconds, audiences: target.audiences.length > 0 ? target.audiences : null },
  });
  const responseText = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        ca: target.ca,
        timeout: target.timeoutMs,
        headers: {
          authorization: `Bearer ${target.gatewayToken}`,
          "content-type": "application/json",
          accept: "application/json",
          "content-length": Buffer.byteLength(body),
        },
        ...(target.signal === undefined ? {} : { signal: target.signal }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }); });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`TokenRequest timed out after ${target.timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
  if (responseText.status !== 201 && responseText.status !== 200) {
    // The API server's Status message names the ServiceAccount and the reason; it never contains a token.
    let message = `HTTP ${responseText.status}`;
    try {
      const status = JSON.parse(responseText.text) as { message?: unknown };
      if (typeof status.message === "string") message += `: ${status.message}`;
    } catch {
      // not a Status body; the HTTP code says enough
    }
    throw new Error(`TokenRequest for ${target.namespace}/${target.serviceAccount} failed: ${message}`);
  }
  const parsed = JSON.parse(responseText.text) as { status?: { token?: unknown; expirationTimestamp?: unknown } };
  const token = parsed.status?.token;
  const expiry = parsed.status?.expirationTimestamp;
  if (typeof token !== "string" || token === "" || typeof expiry !== "string") {
    throw new Error(`TokenRequest for ${target.namespace}/${target.serviceAccount} returned no token`);
  }
  const expiresAtMs = Date.parse(expiry);
  if (!Number.isFinite(expiresAtMs)) throw new Error("TokenRequest returned an unreadable expirationTimestamp");
  return { token, expiresAtMs };
}
