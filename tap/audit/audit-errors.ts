/**
 * @module tap/audit/audit-errors
 * The closed set of audit error codes and the one error class that carries them.
 */

export type AuditErrorCode =
  | "config_invalid"
  | "spool_io"
  | "spool_corrupt"
  | "store_unavailable"
  | "store_query"
  | "chdb_data_dir_conflict"
  | "schema_missing"
  | "sink_closed";

/** Messages never include row contents, credentials or passwords: only what failed and where. */
export class AuditError extends Error {
  readonly code: AuditErrorCode;
  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AuditError";
    this.code = code;
  }
}

/** A short, secret-free description of any thrown value for logs and metrics. */
export function describeError(err: unknown): string {
  if (err instanceof AuditError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message.slice(0, 500);
  return "unknown error";
}
