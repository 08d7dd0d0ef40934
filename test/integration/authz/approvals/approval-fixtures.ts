/**
 * @module test/integration/authz/approvals/approval-fixtures
 * Shared fixtures for the approval tests: requests, settings, an approver-token issuer (jose) and a local verifier.
 */
import { generateKeyPair, jwtVerify, SignJWT } from "jose";
import type { CryptoKey } from "jose";
import type { VerifyApproverToken } from "../../../../authz/approvals/approval-app.js";
import type { ApprovalPreview, ApprovalSettings } from "../../../../authz/approvals/approval-record.js";
import type { ApprovalServiceConfig, ResolvePendingRequestInput } from "../../../../authz/approvals/approval-service.js";

export const APPROVER_AUDIENCE = "airlock-approvers";
export const AGENT_AUDIENCE = "airlock-agents";
export const ISSUER = "https://idp.test";
export const AGENT_ISSUER = "https://agents.idp.test";

/** Service settings for tests: answer pending at once (retry mode), agents in group `agents`, a slow expiry sweep. */
export const retryServiceConfig: ApprovalServiceConfig = {
  pendingMode: "retry",
  holdSeconds: 1,
  retryAfterSeconds: 5,
  defaultTtlSeconds: 900,
  publicUrl: "http://127.0.0.1:1",
  agentGroups: ["agents"],
  agentIssuers: [],
  expirySweepSeconds: 60,
};

export const onceSettings: ApprovalSettings = { approverGroups: ["sre"], minApprovals: 1, grant: "once", ttlSeconds: 900 };

export const deletePreview: ApprovalPreview = {
  method: "DELETE",
  path: "/apis/apps/v1/namespaces/prod-a/deployments/web",
  query: "",
  attributes: {
    verb: "delete",
    apiGroup: "apps",
    apiVersion: "v1",
    resource: "deployments",
    subresource: "",
    namespace: "prod-a",
    name: "web",
    resourceRequest: true,
  },
  body: { kind: "none" },
};

export function pendingInput(
  fingerprint: string,
  overrides: Partial<ResolvePendingRequestInput> = {},
): ResolvePendingRequestInput {
  return {
    fingerprint,
    requester: { subject: "system:serviceaccount:agents:claude", groups: ["agents"], sessionId: "sess-1" },
    ruleId: "deleting-workloads-needs-a-human",
    settings: onceSettings,
    preview: deletePreview,
    ...overrides,
  };
}

export interface TokenIssuer {
  mint(claims: { sub: string; groups: readonly string[]; aud?: string; iss?: string; expSeconds?: number }): Promise<string>;
  readonly verify: VerifyApproverToken;
}

/** One signing key; the verifier accepts only the approver audience, as the identity module's approver verifier does. */
export async function createTokenIssuer(): Promise<TokenIssuer> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  return {
    async mint(claims) {
      return new SignJWT({ groups: [...claims.groups] })
        .setProtectedHeader({ alg: "ES256" })
        .setSubject(claims.sub)
        .setIssuer(claims.iss ?? ISSUER)
        .setAudience(claims.aud ?? APPROVER_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(`${claims.expSeconds ?? 300}s`)
        .sign(privateKey);
    },
    verify: localVerifier(publicKey),
  };
}

function localVerifier(publicKey: CryptoKey): VerifyApproverToken {
  return async (token) => {
    try {
      const { payload } = await jwtVerify(token, publicKey, {
        audience: APPROVER_AUDIENCE,
        issuer: [ISSUER, AGENT_ISSUER],
        algorithms: ["ES256"],
      });
      const groups = Array.isArray(payload["groups"]) ? payload["groups"].filter((g): g is string => typeof g === "string") : [];
      return { ok: true, identity: { subject: payload.sub ?? "", groups, issuer: payload.iss ?? "" } };
    } catch {
      return { ok: false, code: "invalid_token", message: "token rejected" };
    }
  };
}
