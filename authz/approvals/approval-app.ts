/**
 * @module authz/approvals/approval-app
 * The approver HTTP API (fastify): list, show, approve, reject under /v1/approvals, zod-validated, OpenAPI at /openapi.json.
 */
import Fastify from "fastify";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { approvalPreviewSchema } from "./approval-preview-schema.js";
import type { ApprovalRecord } from "./approval-record.js";
import type { ApprovalDecisionErrorCode, ApprovalService, ApproverIdentity } from "./approval-service.js";

/** The injected verifier: an OIDC token checked against the approver audience (never the agent audience). */
export type VerifyApproverToken = (
  token: string,
) => Promise<
  | { readonly ok: true; readonly identity: ApproverIdentity }
  | { readonly ok: false; readonly code: string; readonly message: string }
>;

export interface ApprovalAppDeps {
  readonly service: ApprovalService;
  readonly verifyApproverToken: VerifyApproverToken;
  /** Told about unexpected failures (500s); the message never carries tokens. */
  readonly onError?: (error: unknown) => void;
  readonly bodyLimitBytes?: number;
}

/** The closed set of API error codes; each maps to exactly one HTTP status. */
export type ApprovalApiErrorCode =
  | "bad_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "internal";

const API_STATUS: Record<ApprovalApiErrorCode, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
};

const DECISION_ERROR_TO_API: Record<ApprovalDecisionErrorCode, ApprovalApiErrorCode> = {
  not_found: "not_found",
  invalid_reason: "bad_request",
  agent_identity: "forbidden",
  not_an_approver: "forbidden",
  self_approval: "forbidden",
  duplicate_approver: "conflict",
  already_decided: "conflict",
  expired: "conflict",
};

// ---- schemas (requests validated with these; responses documented with them) ----

const STATES = ["pending", "approved", "rejected", "expired", "consumed"] as const;

export const approvalIdParamsSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "must be an approval id like apr_0123456789abcdef"),
});

export const listApprovalsQuerySchema = z.strictObject({
  state: z.enum(STATES).optional(),
  namespace: z.string().min(1).max(253).optional(),
  requester: z.string().min(1).max(1024).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const decisionBodySchema = z.strictObject({
  reason: z.string().trim().min(1, "a reason is required").max(1000),
});

const historyEntrySchema = z.object({
  at: z.iso.datetime(),
  action: z.enum(["created", "approved", "rejected", "expired", "consumed"]),
  actor: z.string(),
  reason: z.string(),
});

export const approvalViewSchema = z.object({
  id: z.string(),
  state: z.enum(STATES),
  fingerprint: z.string(),
  ruleId: z.string(),
  requester: z.object({ subject: z.string(), groups: z.array(z.string()), sessionId: z.string() }),
  approval: z.object({
    approverGroups: z.array(z.string()),
    minApprovals: z.number().int(),
    grant: z.enum(["once", "window"]),
    ttlSeconds: z.number().int(),
  }),
  // Documented in the output direction only, where strict and plain objects give the same JSON Schema.
  preview: approvalPreviewSchema,
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  decidedAt: z.iso.datetime().nullable(),
  approvers: z.array(z.string()),
  approvalsRequired: z.number().int(),
  rejection: z.object({ by: z.string(), reason: z.string() }).nullable(),
  history: z.array(historyEntrySchema),
  url: z.string(),
});
export type ApprovalView = z.infer<typeof approvalViewSchema>;

const errorBodySchema = z.object({
  error: z.object({
    code: z.enum(Object.keys(API_STATUS) as [ApprovalApiErrorCode, ...ApprovalApiErrorCode[]]),
    reason: z.string(),
    message: z.string(),
  }),
});

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function approvalView(record: ApprovalRecord, url: string): ApprovalView {
  return {
    id: record.id,
    state: record.state,
    fingerprint: record.fingerprint,
    ruleId: record.ruleId,
    requester: { subject: record.requester.subject, groups: [...record.requester.groups], sessionId: record.requester.sessionId },
    approval: { ...record.settings, approverGroups: [...record.settings.approverGroups] },
    preview: record.preview,
    createdAt: iso(record.createdAtMs),
    expiresAt: iso(record.expiresAtMs),
    decidedAt: record.decidedAtMs === null ? null : iso(record.decidedAtMs),
    approvers: [...record.approvers],
    approvalsRequired: record.settings.minApprovals,
    rejection: record.rejection,
    history: record.history.map((h) => ({ at: iso(h.atMs), action: h.action, actor: h.actor, reason: h.reason })),
    url,
  };
}

/** "body.reason: a reason is required" — one line per issue, path-qualified, never echoing the input. */
function issuesMessage(where: string, error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = [where, ...issue.path.map(String)].join(".");
      return `${path}: ${issue.message}`;
    })
    .join("; ");
}

class ApiError extends Error {
  constructor(
    readonly code: ApprovalApiErrorCode,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw new ApiError("bad_request", "invalid_input", issuesMessage(where, result.error));
  return result.data;
}

function openApiDocument(): Record<string, unknown> {
  const json = (schema: z.ZodType) => z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
  const out = (schema: z.ZodType) => z.toJSONSchema(schema, { io: "output", unrepresentable: "any" });
  const errorResponse = (description: string) => ({
    description,
    content: { "application/json": { schema: out(errorBodySchema) } },
  });
  const idParam = { name: "id", in: "path", required: true, schema: json(approvalIdParamsSchema.shape.id) };
  const decision = (verb: string) => ({
    summary: `${verb} an approval (reason required; counted once per approver)`,
    security: [{ approverBearer: [] }],
    parameters: [idParam],
    requestBody: { required: true, content: { "application/json": { schema: json(decisionBodySchema) } } },
    responses: {
      "200": { description: "the updated approval", content: { "application/json": { schema: out(approvalViewSchema) } } },
      "400": errorResponse("malformed body"),
      "401": errorResponse("missing or invalid approver token"),
      "403": errorResponse("not an approver for this rule, self-approval, or an agent identity"),
      "404": errorResponse("unknown approval id"),
      "409": errorResponse("already decided, expired, or this approver already acted"),
    },
  });
  const listQuery = listApprovalsQuerySchema.shape;
  return {
    openapi: "3.1.0",
    info: { title: "Airlock approvals API", version: "1" },
    components: {
      securitySchemes: {
        approverBearer: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "OIDC token for the approver audience" },
      },
    },
    paths: {
      "/v1/approvals": {
        get: {
          summary: "List approvals (newest first) the caller may act on",
          security: [{ approverBearer: [] }],
          parameters: (["state", "namespace", "requester", "limit"] as const).map((name) => ({
            name,
            in: "query",
            required: false,
            schema: json(listQuery[name]),
          })),
          responses: {
            "200": {
              description: "approvals",
              content: { "application/json": { schema: out(z.object({ items: z.array(approvalViewSchema) })) } },
            },
            "400": errorResponse("invalid filter"),
            "401": errorResponse("missing or invalid approver token"),
            "403": errorResponse("an agent identity"),
          },
        },
      },
      "/v1/approvals/{id}": {
        get: {
          summary: "Show one approval: preview, rule, requester, history",
          security: [{ approverBearer: [] }],
          parameters: [idParam],
          responses: {
            "200": { description: "the approval", content: { "application/json": { schema: out(approvalViewSchema) } } },
            "401": errorResponse("missing or invalid approver token"),
            "403": errorResponse("not an approver for this rule, or an agent identity"),
            "404": errorResponse("unknown approval id"),
          },
        },
      },
      "/v1/approvals/{id}/approve": { post: decision("Approve") },
      "/v1/approvals/{id}/reject": { post: decision("Reject") },
    },
  };
}

/** Builds the app; it never listens itself (the caller does, or tests use inject()). */
export function buildApprovalApp(deps: ApprovalAppDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: deps.bodyLimitBytes ?? 16 * 1024, return503OnClosing: true });
  const identities = new WeakMap<FastifyRequest, ApproverIdentity>();
  const { service } = deps;
  const openapi = openApiDocument();

  const sendError = (reply: FastifyReply, error: ApiError) => {
    if (error.code === "unauthenticated") reply.header("www-authenticate", 'Bearer realm="airlock-approvals"');
    return reply.code(API_STATUS[error.code]).send({ error: { code: error.code, reason: error.reason, message: error.message } });
  };

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (error instanceof ApiError) return sendError(reply, error);
    const status = error.statusCode ?? 500;
    if (status === 413) return sendError(reply, new ApiError("payload_too_large", "body_too_large", "body: too large"));
    if (status === 415) {
      return sendError(reply, new ApiError("unsupported_media_type", "unsupported_media_type", "body: must be application/json"));
    }
    if (status >= 400 && status < 500) {
      // Fastify's own parse errors (malformed JSON, empty JSON body): say where, not what was sent.
      const what = error.code === "FST_ERR_CTP_EMPTY_JSON_BODY" ? "empty JSON body" : "malformed JSON";
      return sendError(reply, new ApiError("bad_request", "malformed_body", `body: ${what}`));
    }
    deps.onError?.(error);
    return sendError(reply, new ApiError("internal", "internal", "internal error"));
  });

  app.setNotFoundHandler((_request, reply) => sendError(reply, new ApiError("not_found", "no_route", "no such route")));

  const authenticate = async (request: FastifyRequest) => {
    const header = request.headers.authorization ?? "";
    const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(header);
    if (match?.[1] === undefined) throw new ApiError("unauthenticated", "missing_token", "an approver bearer token is required");
    const verified = await deps.verifyApproverToken(match[1]);
    if (!verified.ok) {
      throw new ApiError("unauthenticated", "invalid_token", "the approver token was not accepted (audience, issuer, signature or expiry)");
    }
    if (service.isAgentIdentity(verified.identity)) {
      throw new ApiError("forbidden", "agent_identity", "agent identities can never see or act on approvals");
    }
    identities.set(request, verified.identity);
  };

  const identityOf = (request: FastifyRequest): ApproverIdentity => {
    const identity = identities.get(request);
    if (identity === undefined) throw new ApiError("unauthenticated", "missing_token", "an approver bearer token is required");
    return identity;
  };

  app.get("/openapi.json", (_request, reply) => reply.send(openapi));

  app.register(
    (v1, _opts, done) => {
      v1.addHook("preHandler", authenticate);

      v1.get("/approvals", async (request) => {
        const query = parseOrThrow(listApprovalsQuerySchema, request.query, "query");
        const identity = identityOf(request);
        // Filtering after the limit could hide matches; read more and trim. Approvers only see their rules' records.
        const records = await service.list({
          ...(query.state === undefined ? {} : { state: query.state }),
          ...(query.namespace === undefined ? {} : { namespace: query.namespace }),
          ...(query.requester === undefined ? {} : { requesterSubject: query.requester }),
          limit: Math.min(5000, query.limit * 10),
        });
        const items = records
          .filter((r) => service.isApproverFor(identity, r))
          .slice(0, query.limit)
          .map((r) => approvalView(r, service.approvalUrl(r.id)));
        return { items };
      });

      v1.get("/approvals/:id", async (request) => {
        const { id } = parseOrThrow(approvalIdParamsSchema, request.params, "params");
        const identity = identityOf(request);
        const record = await service.get(id);
        if (record === null) throw new ApiError("not_found", "not_found", `approval ${id} not found`);
        if (!service.isApproverFor(identity, record)) {
          throw new ApiError("forbidden", "not_an_approver", `rule ${record.ruleId} needs an approver in one of: ${record.settings.approverGroups.join(", ")}`);
        }
        return approvalView(record, service.approvalUrl(record.id));
      });

      for (const action of ["approve", "reject"] as const) {
        v1.post(`/approvals/:id/${action}`, async (request) => {
          const { id } = parseOrThrow(approvalIdParamsSchema, request.params, "params");
          const body = parseOrThrow(decisionBodySchema, request.body, "body");
          const result = await service.decide({ approvalId: id, action, identity: identityOf(request), reason: body.reason });
          if (!result.ok) throw new ApiError(DECISION_ERROR_TO_API[result.code], result.code, result.message);
          return approvalView(result.record, service.approvalUrl(result.record.id));
        });
      }
      done();
    },
    { prefix: "/v1" },
  );

  return app;
}
