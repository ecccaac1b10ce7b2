// A real `natsched server` for the tests: built from this repository with
// `go build`, started with an embedded NATS server on a free 127.0.0.1 port
// and a temporary store, stopped (and its store removed) after.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The repository root (this file runs from clients/typescript/dist/test/). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

const readyLine = /msg="natsched: ready" url=(nats:\/\/127\.0\.0\.1:\d+)/;

/** How long the daemon may take to print its ready line (a -race build on two busy cores is slow). */
const readyTimeout = 60_000;
/** How long it may take to exit after SIGTERM (the contract says 5 s). */
const exitTimeout = 10_000;

export interface Daemon {
  url: string;
  /** Its stderr so far, for failure messages. */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * Builds the natsched binary into dir (or uses $NATSCHED_BIN) and returns
 * its path.
 */
export async function buildNatsched(dir: string): Promise<string> {
  if (process.env.NATSCHED_BIN) {
    return process.env.NATSCHED_BIN;
  }
  const bin = join(dir, "natsched");
  await promisify(execFile)("go", ["build", "-o", bin, "./cmd/natsched"], { cwd: repoRoot, timeout: 600_000 });
  return bin;
}

/** Starts `natsched server` with args after the defaults, and waits until it is ready. */
export async function startDaemon(args: string[] = []): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), "natsched-ts-"));
  const bin = await buildNatsched(dir);
  const child: ChildProcess = spawn(
    bin,
    ["server", "--listen", "127.0.0.1:0", "--store", join(dir, "store"), "--name", "ts-test", "--lease", "1s", ...args],
    { env: { ...process.env, NATS_URL: "" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  const logs: string[] = [];
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`natsched server not ready within ${readyTimeout}ms:\n${logs.join("\n")}`)), readyTimeout);
    createInterface({ input: child.stderr! }).on("line", (line) => {
      logs.push(line);
      const m = readyLine.exec(line);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`natsched server exited (${code}) before ready:\n${logs.join("\n")}`));
    });
  });
  return {
    url,
    logs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), exitTimeout);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
