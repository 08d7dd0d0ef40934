/**
 * @module authz/credentials/upstream-credentials
 * Chooses and produces the credential a request carries upstream (DESIGN.md §6): TokenRequest-minted ServiceAccount
 * tokens cached until shortly before expiry with one mint shared by concurrent requests, impersonation, or a
 * development-only static token.
 */
import { readFile } from "node:fs/promises";
import type { CredentialsConfig } from "./credentials-config.js";
import { GatewayTokenFile } from "./gateway-token-file.js";
import { mintServiceAccountToken, type MintedToken } from "./token-request-client.js";

export interface CredentialSubject {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly sessionId: string;
}

export interface ServiceAccountRef {
  readonly namespace: string;
  readonly name: string;
}

/** Headers to set upstream, in order; repeated names are meant to be appended (Impersonate-Group). */
export interface UpstreamCredential {
  readonly headers: readonly (readonly [name: string, value: string])[];
  /** For the audit record: which upstream identity was used (never the token). */
  readonly upstreamIdentity: string;
}

export type CredentialErrorCode = "NO_SERVICE_ACCOUNT" | "MINT_FAILED" | "GATEWAY_TOKEN_UNAVAILABLE" | "STATIC_TOKEN_UNAVAILABLE";

export class CredentialError extends Error {
  readonly code: CredentialErrorCode;
  constructor(code: CredentialErrorCode, message: string) {
    super(message);
    this.name = "CredentialError";
    this.code = code;
  }
}

export interface UpstreamCredentials {
  readonly mode: CredentialsConfig["mode"];
  credentialFor(subject: CredentialSubject, serviceAccount: ServiceAccountRef | undefined): Promise<UpstreamCredential>;
}

export interface UpstreamCredentialsOptions {
  readonly now?: () => number;
  /** Replaceable for tests of the cache; defaults to the real TokenRequest call. */
  readonly mint?: typeof mintServiceAccountToken;
}

/** Percent-encodes an Impersonate-Extra key as the API server expects (lower-case, RFC 3986 unreserved kept). */
function impersonateExtraHeader(key: string): string {
  return `impersonate-extra-${encodeURIComponent(key.toLowerCase())}`;
}

export async function createUpstreamCredentials(
  config: CredentialsConfig,
  options: UpstreamCredentialsOptions = {},
): Promise<UpstreamCredentials> {
  const now = options.now ?? Date.now;
  const gatewayToken =
    config.gatewayTokenFile === undefined ? undefined : new GatewayTokenFile(config.gatewayTokenFile, config.gatewayTokenRecheckMs, now);
  const readGatewayToken = async (): Promise<string> => {
    if (!gatewayToken) throw new CredentialError("GATEWAY_TOKEN_UNAVAILABLE", "no gatewayTokenFile configured");
    try {
      return await gatewayToken.current();
    } catch (error) {
      throw new CredentialError("GATEWAY_TOKEN_UNAVAILABLE", `gateway token unreadable: ${(error as Error).message}`);
    }
  };

  switch (config.mode) {
    case "none":
      return { mode: config.mode, credentialFor: () => Promise.resolve({ headers: [], upstreamIdentity: "none" }) };

    case "developmentStaticToken": {
      const file = config.developmentStaticToken?.tokenFile;
      if (file === undefined) throw new CredentialError("STATIC_TOKEN_UNAVAILABLE", "developmentStaticToken.tokenFile is required");
      const token = (await readFile(file, "utf8")).trim();
      if (token === "") throw new CredentialError("STATIC_TOKEN_UNAVAILABLE", `static token file ${file} is empty`);
      return {
        mode: config.mode,
        credentialFor: () => Promise.resolve({ headers: [["authorization", `Bearer ${token}`]], upstreamIdentity: "static-token" }),
      };
    }

    case "impersonate": {
      const settings = config.impersonate;
      return {
        mode: config.mode,
        async credentialFor(subject) {
          const token = await readGatewayToken();
          const headers: [string, string][] = [
            ["authorization", `Bearer ${token}`],
            ["impersonate-user", `${settings.userPrefix}${subject.subject}`],
          ];
          for (const group of [...subject.groups.map((g) => `${settings.groupPrefix}${g}`), ...settings.extraGroups]) {
            headers.push(["impersonate-group", group]);
          }
          if (subject.sessionId !== "") headers.push([impersonateExtraHeader("airlock.dev/session"), subject.sessionId]);
          return { headers, upstreamIdentity: `${settings.userPrefix}${subject.subject}` };
        },
      };
    }

    case "tokenRequest": {
      const apiServer = config.apiServer;
      if (!apiServer) throw new CredentialError("MINT_FAILED", "apiServer is required for tokenRequest mode");
      const ca = await readFile(apiServer.caFile);
      const mint = options.mint ?? mintServiceAccountToken;
      const settings = config.tokenRequest;
      const cache = new Map<string, MintedToken>();
      const inFlight = new Map<string, Promise<MintedToken>>();
      const refreshBeforeMs = settings.refreshBeforeExpirySeconds * 1000;

      const tokenFor = (sa: ServiceAccountRef): Promise<MintedToken> => {
        const key = `${sa.namespace}/${sa.name}`;
        const cached = cache.get(key);
        if (cached && cached.expiresAtMs - refreshBeforeMs > now()) return Promise.resolve(cached);
        const pending = inFlight.get(key);
        if (pending) return pending;
        // One mint per ServiceAccount at a time: concurrent requests share it instead of stampeding the API server.
        const minting = (async () => {
          try {
            const minted = await mint({
              apiServerUrl: apiServer.url,
              ca,
              gatewayToken: await readGatewayToken(),
              namespace: sa.namespace,
              serviceAccount: sa.name,
              expirationSeconds: settings.expirationSeconds,
              audiences: settings.audiences,
              timeoutMs: apiServer.requestTimeoutMs,
            });
            cache.set(key, minted);
            return minted;
          } catch (error) {
            if (error instanceof CredentialError) throw error;
            throw new CredentialError("MINT_FAILED", (error as Error).message);
          } finally {
            inFlight.delete(key);
          }
        })();
        inFlight.set(key, minting);
        return minting;
      };

      return {
        mode: config.mode,
        async credentialFor(_subject, serviceAccount) {
          if (!serviceAccount) {
            throw new CredentialError("NO_SERVICE_ACCOUNT", "the policy maps this request to no ServiceAccount");
          }
          const minted = await tokenFor(serviceAccount);
          return {
            headers: [["authorization", `Bearer ${minted.token}`]],
            upstreamIdentity: `system:serviceaccount:${serviceAccount.namespace}:${serviceAccount.name}`,
          };
        },
      };
    }
  }
}
