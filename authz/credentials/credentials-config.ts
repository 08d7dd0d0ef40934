/**
 * @module authz/credentials/credentials-config
 * The configuration of how Airlock authenticates upstream on the agent's behalf: TokenRequest-minted
 * ServiceAccount tokens, impersonation, or (development only) a static token.
 */
import { z } from "zod";

export const credentialsConfigSchema = z
  .strictObject({
    /**
     * tokenRequest: a short-lived token for the ServiceAccount the policy maps the request to.
     * impersonate: the gateway's own token plus Impersonate-User/Group/Extra for the agent.
     * developmentStaticToken: one fixed token for everything (development only; warns at start).
     * none: inject nothing (the agent's credential is still removed); for trying Airlock without a cluster.
     */
    mode: z.enum(["tokenRequest", "impersonate", "developmentStaticToken", "none"]).default("none"),
    apiServer: z
      .strictObject({
        url: z.url({ protocol: /^https$/ }),
        caFile: z.string().min(1),
        requestTimeoutMs: z.number().int().positive().max(60_000).default(5_000),
      })
      .optional(),
    /** The gateway's own credential (a projected ServiceAccount token file); re-read when it rotates. */
    gatewayTokenFile: z.string().min(1).optional(),
    gatewayTokenRecheckMs: z.number().int().positive().default(1_000),
    tokenRequest: z
      .strictObject({
        expirationSeconds: z.number().int().min(600).max(86_400).default(600),
        refreshBeforeExpirySeconds: z.number().int().min(0).default(120),
        audiences: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
    impersonate: z
      .strictObject({
        userPrefix: z.string().default("airlock:"),
        groupPrefix: z.string().default("airlock:"),
        extraGroups: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
    developmentStaticToken: z.strictObject({ tokenFile: z.string().min(1) }).optional(),
  })
  .superRefine((config, ctx) => {
    const need = (present: unknown, path: string, why: string): void => {
      if (present === undefined) ctx.addIssue({ code: "custom", path: path.split("."), message: `required when mode is ${config.mode}: ${why}` });
    };
    if (config.mode === "tokenRequest") {
      need(config.apiServer, "apiServer", "TokenRequest calls go to the API server");
      need(config.gatewayTokenFile, "gatewayTokenFile", "the gateway authenticates its TokenRequest calls");
    }
    if (config.mode === "impersonate") need(config.gatewayTokenFile, "gatewayTokenFile", "the gateway's token carries the impersonation");
    if (config.mode === "developmentStaticToken") need(config.developmentStaticToken, "developmentStaticToken", "the token to inject");
  });

export type CredentialsConfig = z.output<typeof credentialsConfigSchema>;
