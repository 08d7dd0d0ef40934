/**
 * @module authz/check/redact-headers
 * Request headers as they may be written to logs and audit rows: credential-bearing values are replaced, names kept,
 * so auditors see that a credential was sent without seeing it.
 */

/** Header names whose values are credentials whatever their content. */
const CREDENTIAL_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie"]);
/** Substrings that mark a custom header as credential-bearing (x-api-key, x-auth-token, x-vault-secret, ...). */
const CREDENTIAL_NAME_PARTS = ["token", "secret", "password", "passwd", "api-key", "apikey", "credential", "session-key"];

export const REDACTED = "[redacted]";

export function isCredentialHeader(name: string): boolean {
  const lower = name.toLowerCase();
  if (CREDENTIAL_HEADERS.has(lower)) return true;
  return CREDENTIAL_NAME_PARTS.some((part) => lower.includes(part));
}

/** A copy of the header map with credential values replaced by a marker; pseudo-headers are kept. */
export function redactHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = isCredentialHeader(name) ? REDACTED : value;
  return out;
}
