/**
 * @module authz/policy/policy-watcher
 * Hot reload of the policy file: a bad edit is refused and the last good policy stays in force.
 */
import { readFileSync, watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { PolicyLoadError, parsePolicy, policyVersion } from "./compile-policy.js";
import type { CompiledPolicy } from "./compile-policy.js";

export interface PolicyWatchHandlers {
  /** A changed, valid policy is now in force. */
  onReload(policy: CompiledPolicy): void;
  /** A changed policy was refused; the previous one stays in force. */
  onRejected(errors: readonly string[]): void;
}

export interface PolicyWatchOptions {
  /** Quiet time after the last change event before re-reading (editors write in several steps). */
  readonly debounceMs?: number;
  /**
   * Polling interval. fs.watch misses changes on some filesystems (network mounts, and Kubernetes
   * ConfigMap volumes, which swap a `..data` symlink), so the file is also re-read on a timer.
   * 0 disables polling.
   */
  readonly pollIntervalMs?: number;
}

export interface PolicyWatcher {
  current(): CompiledPolicy;
  close(): void;
}

const DEFAULT_DEBOUNCE_MS = 150;
const DEFAULT_POLL_INTERVAL_MS = 2_000;

/**
 * Loads `path` now (throws PolicyLoadError if it is unreadable or invalid: the gateway must not start
 * without a policy) and keeps it current. Reloads only when the file's content hash changes.
 */
export function watchPolicyFile(path: string, handlers: PolicyWatchHandlers, options: PolicyWatchOptions = {}): PolicyWatcher {
  const sourceName = basename(path);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    throw new PolicyLoadError("POLICY_READ_FAILED", [`${sourceName}: cannot read policy file (${code})`]);
  }
  const initial = parsePolicy(text, sourceName);
  if (!initial.ok) throw new PolicyLoadError(initial.code, initial.errors);

  let current = initial.policy;
  // Hash of the last text we judged, good or bad, so a rejected file is reported once, not every poll.
  let lastSeenVersion = current.version;
  let closed = false;
  // Read through a function: `closed` changes while reload() awaits, which flow analysis cannot see.
  const isClosed = (): boolean => closed;
  let debounce: NodeJS.Timeout | undefined;
  let reading = false;
  let rereadRequested = false;

  // A throwing handler must neither crash the process (this runs from timers) nor stop the watcher;
  // the policy swap has already happened by then.
  const notify = (call: () => void): void => {
    try {
      call();
    } catch {
      // Deliberately ignored: see above.
    }
  };

  const reload = async (): Promise<void> => {
    if (closed) return;
    if (reading) {
      rereadRequested = true;
      return;
    }
    reading = true;
    try {
      let nextText: string;
      try {
        nextText = await readFile(path, "utf8");
      } catch (error) {
        // Mid-swap (rename/symlink replace) the file can briefly be missing; the next event or poll retries.
        const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
        const marker = `read-error:${code}`;
        if (!isClosed() && lastSeenVersion !== marker) {
          lastSeenVersion = marker;
          notify(() => {
            handlers.onRejected([`${sourceName}: cannot read policy file (${code}); keeping policy ${current.version}`]);
          });
        }
        return;
      }
      const version = policyVersion(nextText);
      if (isClosed() || version === lastSeenVersion) return;
      lastSeenVersion = version;
      const parsed = parsePolicy(nextText, sourceName);
      if (parsed.ok) {
        current = parsed.policy;
        const policy = current;
        notify(() => {
          handlers.onReload(policy);
        });
      } else {
        notify(() => {
          handlers.onRejected(parsed.errors);
        });
      }
    } finally {
      reading = false;
      if (rereadRequested && !isClosed()) {
        rereadRequested = false;
        void reload();
      }
    }
  };

  const schedule = (): void => {
    if (closed) return;
    if (debounce !== undefined) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      void reload();
    }, options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    debounce.unref();
  };

  // Watch the directory, not the file: atomic saves replace the inode, which ends a file watch.
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
      if (changed === null || changed === sourceName || changed.startsWith("..")) schedule();
    });
    watcher.on("error", () => {
      // Polling keeps working; a broken watcher must not crash the process.
      watcher?.close();
      watcher = undefined;
    });
  } catch {
    watcher = undefined;
  }

  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const poller = pollIntervalMs > 0 ? setInterval(() => void reload(), pollIntervalMs) : undefined;
  poller?.unref();

  return {
    current: () => current,
    close(): void {
      closed = true;
      if (debounce !== undefined) clearTimeout(debounce);
      if (poller !== undefined) clearInterval(poller);
      watcher?.close();
      watcher = undefined;
    },
  };
}
