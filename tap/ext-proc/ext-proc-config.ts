/**
 * @module tap/ext-proc/ext-proc-config
 * Settings of the ext_proc service (zod, parsed once, frozen): masking settings plus what the audit
 * record keeps and whether Envoy lets us override processing modes.
 */
import { z } from "zod";
import { loadMaskConfig, maskConfigSchema, type MaskConfig } from "../mask/mask-config.js";

export const extProcConfigSchema = z.strictObject({
  mask: z.unknown().optional(),
  /** Masked response/request body bytes kept in the audit record; the rest is cut and flagged. */
  recordBodyMaxBytes: z.number().int().nonnegative().default(64 * 1024),
  /**
   * Raw request body bytes held (in memory, never emitted) so a masked copy can be recorded. Kubernetes
   * caps request bodies at 3 MiB; larger ones are recorded as "truncated", without content.
   */
  requestBodyCaptureMaxBytes: z.number().int().nonnegative().default(3 * 1024 * 1024 + 64 * 1024),
  /**
   * Must mirror Envoy's `allow_mode_override`. Only then does a response whose body may skip processing
   * (mask.skipBodyFor) get `mode_override: {response_body_mode: NONE}` in the response-headers reply;
   * otherwise its body chunks still arrive and are passed back unchanged (and not recorded).
   */
  allowModeOverride: z.boolean().default(false),
});

export interface ExtProcConfig {
  readonly mask: MaskConfig;
  readonly recordBodyMaxBytes: number;
  readonly requestBodyCaptureMaxBytes: number;
  readonly allowModeOverride: boolean;
}

/** Parses settings or throws one path-qualified Error. */
export function loadExtProcConfig(input: unknown): ExtProcConfig {
  const parsed = extProcConfigSchema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new Error(
      `invalid ext_proc config: ${parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("; ")}`,
    );
  }
  let mask: MaskConfig;
  try {
    mask = loadMaskConfig(parsed.data.mask ?? {});
  } catch (err) {
    throw new Error(`invalid ext_proc config: mask: ${(err as Error).message}`);
  }
  return Object.freeze({
    mask,
    recordBodyMaxBytes: parsed.data.recordBodyMaxBytes,
    requestBodyCaptureMaxBytes: parsed.data.requestBodyCaptureMaxBytes,
    allowModeOverride: parsed.data.allowModeOverride,
  });
}

export type ExtProcConfigInput = z.input<typeof extProcConfigSchema> & { mask?: z.input<typeof maskConfigSchema> };
