/**
 * @module authz/exchange/kubeconfig-command
 * `airlock kubeconfig`: writes the agent's kubeconfig. The cluster is the Envoy sidecar on loopback, the user is
 * the `airlock credential` exec plugin, so kubectl obtains and refreshes its token with no token on disk.
 */
import { randomUUID } from "node:crypto";
import { chmod, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { writeCommandLine, writeUsageProblem } from "./command-streams.js";
import { CREDENTIAL_SOURCE_OPTIONS, credentialSourceArgs, credentialSourceFromOptions } from "./credential-source.js";
import type { CommandStreams } from "./command-streams.js";

export const KUBECONFIG_USAGE = `usage: airlock kubeconfig --server AIRLOCK_URL (--subject-token-file FILE | --client-id ID --client-secret-env VAR)
                         [--sidecar URL] [--certificate-authority FILE] [--tls-server-name NAME]
                         [--namespace NS] [--scope S] [--name NAME] [--output FILE]
                         [--exec-command CMD] [--exec-arg ARG]... [--refresh-before-seconds N] [--insecure-http]
  Writes a kubeconfig whose cluster is the sidecar (default https://127.0.0.1:16444; the CA that signed its
  certificate is embedded) and whose user runs \`airlock credential\` (to FILE, 0600, or to stdout).
  kubectl sends exec-plugin credentials only over TLS, so the sidecar listener must speak https.`;

/**
 * Where the Envoy sidecar listens in the agent pod by default. https: client-go applies user credentials (exec
 * plugins, tokens) only to TLS transports, so over plain http kubectl would send no credential at all.
 */
export const DEFAULT_SIDECAR_URL = "https://127.0.0.1:16444";

/** Inputs of {@link buildAgentKubeconfig}. */
export interface AgentKubeconfigInput {
  readonly name: string;
  readonly sidecarUrl: string;
  readonly namespace?: string;
  /** PEM of the CA that signed the sidecar's certificate (embedded as certificate-authority-data). */
  readonly certificateAuthorityPem?: string;
  readonly tlsServerName?: string;
  /** The plugin command and the arguments before `credential` (e.g. `node`, [`/app/dist/bin/airlock.js`]). */
  readonly command: string;
  readonly commandArgs: readonly string[];
  /** Arguments after `credential`. */
  readonly credentialArgs: readonly string[];
}

/** Pure: the kubeconfig document. */
export function buildAgentKubeconfig(input: AgentKubeconfigInput): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: input.name,
        cluster: {
          server: input.sidecarUrl,
          ...(input.certificateAuthorityPem === undefined
            ? {}
            : { "certificate-authority-data": Buffer.from(input.certificateAuthorityPem, "utf8").toString("base64") }),
          ...(input.tlsServerName === undefined ? {} : { "tls-server-name": input.tlsServerName }),
        },
      },
    ],
    users: [
      {
        name: input.name,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1",
            command: input.command,
            args: [...input.commandArgs, "credential", ...input.credentialArgs],
            // No prompts: an agent has no terminal, and a plugin that waited for one would hang kubectl.
            interactiveMode: "Never",
            provideClusterInfo: false,
          },
        },
      },
    ],
    contexts: [
      {
        name: input.name,
        context: { cluster: input.name, user: input.name, ...(input.namespace === undefined ? {} : { namespace: input.namespace }) },
      },
    ],
    "current-context": input.name,
    preferences: {},
  };
}

/** Runs the command. Exit codes: 0 ok, 1 failure (cannot write), 2 usage. */
export async function runKubeconfigCommand(argv: readonly string[], io: CommandStreams): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        server: { type: "string" },
        sidecar: { type: "string", default: DEFAULT_SIDECAR_URL },
        "certificate-authority": { type: "string" },
        "tls-server-name": { type: "string" },
        ...CREDENTIAL_SOURCE_OPTIONS,
        scope: { type: "string" },
        namespace: { type: "string" },
        name: { type: "string", default: "airlock" },
        output: { type: "string" },
        "exec-command": { type: "string", default: "airlock" },
        "exec-arg": { type: "string", multiple: true, default: [] },
        "refresh-before-seconds": { type: "string" },
        "insecure-http": { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (error) {
    return writeUsageProblem(io.stderr, (error as Error).message, KUBECONFIG_USAGE);
  }
  const usage = (problem: string): number => writeUsageProblem(io.stderr, `airlock kubeconfig: ${problem}`, KUBECONFIG_USAGE);
  if (values.server === undefined) return usage("--server (the Airlock URL that exchanges tokens) is required");
  const source = credentialSourceFromOptions(values);
  if ("problem" in source) return usage(source.problem);
  let sidecarProtocol: string;
  try {
    sidecarProtocol = new URL(values.sidecar).protocol;
  } catch {
    return usage("--sidecar must be an https URL");
  }
  if (sidecarProtocol !== "http:" && sidecarProtocol !== "https:") return usage("--sidecar must be an https URL");
  if (sidecarProtocol === "http:") {
    writeCommandLine(io.stderr, "airlock kubeconfig: warning: kubectl sends no exec-plugin credential over plain http; the sidecar must listen with TLS");
  }
  let certificateAuthorityPem: string | undefined;
  if (values["certificate-authority"] !== undefined) {
    try {
      certificateAuthorityPem = await readFile(values["certificate-authority"], "utf8");
    } catch (error) {
      writeCommandLine(io.stderr, `airlock kubeconfig: cannot read --certificate-authority: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
      return 1;
    }
    if (!certificateAuthorityPem.includes("-----BEGIN CERTIFICATE-----")) return usage("--certificate-authority must be a PEM certificate file");
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(values.name)) return usage("--name must be a simple name");
  if (values.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(values.namespace)) {
    return usage("--namespace must be a namespace name");
  }

  // The kubeconfig names the secret's environment variable, never the secret.
  const credentialArgs = [
    "--server",
    values.server,
    ...credentialSourceArgs(source),
    ...(values.scope === undefined ? [] : ["--scope", values.scope]),
    ...(values["refresh-before-seconds"] === undefined ? [] : ["--refresh-before-seconds", values["refresh-before-seconds"]]),
    ...(values["insecure-http"] ? ["--insecure-http"] : []),
  ];
  const document = buildAgentKubeconfig({
    name: values.name,
    sidecarUrl: values.sidecar,
    ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
    ...(certificateAuthorityPem === undefined ? {} : { certificateAuthorityPem }),
    ...(values["tls-server-name"] === undefined ? {} : { tlsServerName: values["tls-server-name"] }),
    command: values["exec-command"],
    commandArgs: values["exec-arg"],
    credentialArgs,
  });
  const text = stringify(document);
  if (values.output === undefined) {
    io.stdout.write(text);
    return 0;
  }
  const temporary = join(dirname(values.output), `.kubeconfig.${randomUUID()}.tmp`);
  try {
    await writeFile(temporary, text, { mode: 0o600, flag: "wx" });
    await chmod(temporary, 0o600);
    await rename(temporary, values.output);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    writeCommandLine(io.stderr, `airlock kubeconfig: cannot write ${values.output}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
    return 1;
  }
  writeCommandLine(io.stderr, `wrote ${values.output}`);
  return 0;
}
