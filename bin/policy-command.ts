/**
 * @module bin/policy-command
 * `airlock policy check|explain|test`: validate a policy file, explain the decision for one request, or run a file
 * of expected decisions; exit codes say valid/invalid and pass/fail.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { explainRequest, parseRequestLine } from "../authz/check/explain-request.js";
import { loadPolicyFile } from "../authz/policy/compile-policy.js";
import { formatPolicyTestReport, runPolicyTestFile } from "../authz/policy/policy-tests.js";
import { parseKubeRequest } from "../authz/kube/request-attributes.js";
import { writeLine, type CliIo } from "./cli-io.js";

const USAGE = `usage:
  airlock policy check FILE
  airlock policy explain --policy FILE --sub S --groups a,b --request 'METHOD PATH' [--body FILE]
                         [--content-type T] [--header 'name: value']... [--output text|json]
  airlock policy test FILE`;

function splitList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((item) => item.trim()).filter((item) => item !== "");
}

async function check(io: CliIo, args: string[]): Promise<number> {
  const file = args[0];
  if (file === undefined || args.length !== 1) {
    writeLine(io.stderr, USAGE);
    return 2;
  }
  const result = await loadPolicyFile(file);
  if (!result.ok) {
    for (const error of result.errors) writeLine(io.stderr, error);
    return 1;
  }
  writeLine(io.stdout, `${file}: valid (${result.policy.rules.length} rules, version ${result.policy.version})`);
  return 0;
}

async function explain(io: CliIo, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      policy: { type: "string" },
      sub: { type: "string" },
      groups: { type: "string" },
      request: { type: "string" },
      body: { type: "string" },
      "content-type": { type: "string" },
      header: { type: "string", multiple: true },
      output: { type: "string", default: "text" },
    },
    strict: true,
  });
  const line = values.request === undefined ? undefined : parseRequestLine(values.request);
  if (values.policy === undefined || values.sub === undefined || line === undefined) {
    writeLine(io.stderr, USAGE);
    return 2;
  }
  const loaded = await loadPolicyFile(values.policy);
  if (!loaded.ok) {
    for (const error of loaded.errors) writeLine(io.stderr, error);
    return 1;
  }
  const headers: Record<string, string> = {};
  for (const header of values.header ?? []) {
    const colon = header.indexOf(":");
    if (colon <= 0) {
      writeLine(io.stderr, `--header ${JSON.stringify(header)}: expected 'name: value'`);
      return 2;
    }
    headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
  }
  const result = explainRequest({
    policy: loaded.policy,
    subject: values.sub,
    groups: splitList(values.groups),
    method: line.method,
    path: line.path,
    headers,
    ...(values.body === undefined ? {} : { body: await readFile(values.body) }),
    ...(values["content-type"] === undefined ? {} : { contentType: values["content-type"] }),
  });
  if (!result.ok) {
    writeLine(io.stderr, `request not understood: ${result.error} [${result.code}]`);
    return 1;
  }
  if (values.output === "json") {
    writeLine(io.stdout, JSON.stringify(result, null, 2));
    return 0;
  }
  const a = result.attributes;
  writeLine(io.stdout, `effect:     ${result.effect}${result.defaulted ? " (default)" : ""}`);
  writeLine(io.stdout, `rules:      ${result.rules.map((rule) => `${rule.id} (${rule.effect})`).join(", ") || "-"}`);
  writeLine(io.stdout, `reason:     ${result.reason}`);
  writeLine(io.stdout, `request:    verb=${a.verb} group=${a.apiGroup || '""'} version=${a.apiVersion} resource=${a.resource}` +
    `${a.subresource === "" ? "" : `/${a.subresource}`} namespace=${a.namespace || "-"} name=${a.name || "-"}`);
  if (result.approval) {
    writeLine(io.stdout, `approval:   ${result.approval.minApprovals} of [${result.approval.approverGroups.join(", ")}], grant ${result.approval.grant}, ttl ${result.approval.ttlSeconds}s`);
  }
  writeLine(io.stdout, `policy:     version ${result.policyVersion}`);
  return 0;
}

async function test(io: CliIo, args: string[]): Promise<number> {
  const file = args[0];
  if (file === undefined || args.length !== 1) {
    writeLine(io.stderr, USAGE);
    return 2;
  }
  const report = await runPolicyTestFile(file, (method, rawPath) => {
    const parsed = parseKubeRequest(method, rawPath, {});
    return parsed.ok ? parsed.attributes : `${parsed.message} [${parsed.code}]`;
  });
  writeLine(report.errors.length > 0 ? io.stderr : io.stdout, formatPolicyTestReport(report));
  return report.ok ? 0 : 1;
}

export async function runPolicyCommand(args: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "check":
      return check(io, rest);
    case "explain":
      return explain(io, rest);
    case "test":
      return test(io, rest);
    case undefined:
    default:
      writeLine(io.stderr, USAGE);
      return 2;
  }
}
