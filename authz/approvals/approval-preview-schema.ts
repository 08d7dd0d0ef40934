/**
 * @module authz/approvals/approval-preview-schema
 * The one zod schema of an approval's request preview: validates the stored JSON column and documents the API's response.
 */
import { z } from "zod";

/** An ApprovalPreview (approval-record.ts); strict, so a stored preview with unknown fields is corrupt. */
export const approvalPreviewSchema = z.strictObject({
  method: z.string(),
  path: z.string(),
  query: z.string(),
  attributes: z.strictObject({
    verb: z.string(),
    apiGroup: z.string(),
    apiVersion: z.string(),
    resource: z.string(),
    subresource: z.string(),
    namespace: z.string(),
    name: z.string(),
    resourceRequest: z.boolean(),
  }),
  body: z.discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("none") }),
    z.strictObject({ kind: z.literal("withheld"), reason: z.string() }),
    z.strictObject({ kind: z.literal("masked"), text: z.string(), truncated: z.boolean() }),
  ]),
});
