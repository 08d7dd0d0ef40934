/**
 * @module authz/exchange/credential-source
 * Where the credential plugin's subject token comes from, as both `airlock credential` and `airlock kubeconfig` take it on the command line.
 */

/** The parseArgs options naming the source; spread into each command's options. */
export const CREDENTIAL_SOURCE_OPTIONS = {
  "subject-token-file": { type: "string" },
  "client-id": { type: "string" },
  "client-secret-env": { type: "string" },
} as const;

/** A projected/CI OIDC token re-read from a file, or a registered client's secret read from an environment variable. */
export type CredentialSource =
  | { readonly kind: "subjectTokenFile"; readonly tokenFile: string }
  | { readonly kind: "clientSecret"; readonly clientId: string; readonly secretEnv: string };

/** The parsed values of {@link CREDENTIAL_SOURCE_OPTIONS}. */
export interface CredentialSourceValues {
  readonly "subject-token-file"?: string | undefined;
  readonly "client-id"?: string | undefined;
  readonly "client-secret-env"?: string | undefined;
}

/** The source the options name, or the usage problem: exactly one of a token file or a client id, which needs its secret's variable. */
export function credentialSourceFromOptions(values: CredentialSourceValues): CredentialSource | { readonly problem: string } {
  const tokenFile = values["subject-token-file"];
  const clientId = values["client-id"];
  const secretEnv = values["client-secret-env"];
  if (tokenFile !== undefined && clientId === undefined) return { kind: "subjectTokenFile", tokenFile };
  if (tokenFile !== undefined || clientId === undefined) return { problem: "give exactly one of --subject-token-file or --client-id" };
  if (secretEnv === undefined) return { problem: "--client-id needs --client-secret-env" };
  return { kind: "clientSecret", clientId, secretEnv };
}

/** The options that name `source` again (the kubeconfig's plugin arguments): the variable's name, never the secret. */
export function credentialSourceArgs(source: CredentialSource): string[] {
  return source.kind === "subjectTokenFile"
    ? ["--subject-token-file", source.tokenFile]
    : ["--client-id", source.clientId, "--client-secret-env", source.secretEnv];
}
