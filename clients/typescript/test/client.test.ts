// The TypeScript client against a real `natsched server` (see daemon.ts):
// every verb, every error code, intake publishes, fired messages, and each
// reply validated against schema/schedule.schema.json with ajv.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { connect, headers } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient } from "@nats-io/jetstream";
import { Ajv2020 } from "ajv/dist/2020.js";

import {
  cancelIntake,
  consumeFired,
  encodeData,
  ErrorCode,
  fired,
  NatschedClient,
  NatschedError,
  payloadOf,
  publishIntake,
} from "../src/index.js";
import type { Fired, Schedule } from "../src/index.js";
import { repoRoot, startDaemon } from "./daemon.js";
import type { Daemon } from "./daemon.js";

/** Bound of every wait for something to fire. */
const fireWait = 15_000;
/** Bound of each test (node:test has none by default). */
const testTimeout = { timeout: 60_000 };

const schema = JSON.parse(readFileSync(join(repoRoot, "schema", "schedule.schema.json"), "utf8"));
// Strict, except strictRequired: "not": {"required": ["data", "text"]} and
// the oneOf of required kinds name properties their own subschema does not
// declare, which is the point of them. Formats are annotations here; the
// schema's patterns check times.
const ajv = new Ajv2020({
  strictSchema: true, strictNumbers: true, strictTypes: true, strictTuples: true, strictRequired: false,
  allErrors: true, validateFormats: false,
});
ajv.addSchema(schema);

/** Asserts doc matches $defs/def of the schema. */
function conforms(def: string, doc: unknown): void {
  const v = ajv.getSchema(`${schema.$id}#/$defs/${def}`);
  assert.ok(v, `no $defs/${def}`);
  assert.ok(v(doc), `${def}: ${ajv.errorsText(v.errors)}\n${JSON.stringify(doc)}`);
}

/** Asserts that p rejects with a NatschedError of code, and returns it. */
async function rejects(p: Promise<unknown>, code: number, field?: string): Promise<NatschedError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof NatschedError, `not a NatschedError: ${err}`);
    assert.equal(err.code, code, err.message);
    if (field !== undefined) assert.equal(err.field, field, err.message);
    return err;
  }
  assert.fail(`expected a ${code}`);
}

/** Resolves with what cond returns once it is truthy; fails after fireWait. */
async function eventually<T>(what: string, cond: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + fireWait;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`not within ${fireWait}ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let daemon: Daemon;
let nc: NatsConnection;
let js: JetStreamClient;
let sched: NatschedClient;
// Fired messages of natsched.fire.ts.>, by schedule ID.
const fires = new Map<string, Fired[]>();
let stopFires: () => Promise<void>;

// The first build of the binary can take minutes on a cold cache.
before(async () => {
  daemon = await startDaemon([
    "--allow", "ts.>=natsched.fire.ts.>",
    "--allow", "example.>=natsched.fire.example.>",
  ]);
  nc = await connect({ servers: daemon.url });
  js = jetstream(nc);
  sched = new NatschedClient(nc);
  const c = await consumeFired(js, (f) => {
    fires.set(f.id, [...(fires.get(f.id) ?? []), f]);
  }, { subjects: "natsched.fire.ts.>" });
  stopFires = c.stop;
}, { timeout: 600_000 });

after(async () => {
  await stopFires?.();
  await nc?.close();
  await daemon?.stop();
}, { timeout: 30_000 });

function firesOf(id: string, n: number): Promise<Fired[]> {
  return eventually(`${n} fires of ${id}`, () => {
    const f = fires.get(id) ?? [];
    return f.length >= n ? f : undefined;
  });
}

describe("request/reply API", testTimeout, () => {
  test("put with each kind, get, and the reply form", async () => {
    const start = new Date(Date.now() + 3_600_000).toISOString();
    const cases: [string, Parameters<NatschedClient["put"]>[1], (s: Schedule) => void][] = [
      ["ts.kind.at", { subject: "natsched.fire.ts.kind", at: start, text: "at" }, (s) => {
        assert.equal(s.next_run, s.at);
        assert.equal(new TextDecoder().decode(payloadOf(s)), "at");
      }],
      ["ts.kind.in", { subject: "natsched.fire.ts.kind", in: "2d", data: encodeData("in"), header: { "X-Trace": "abc" } }, (s) => {
        assert.equal(s.every, undefined);
        assert.ok(s.at, "in is stored as at");
        const at = Date.parse(s.at);
        assert.ok(Math.abs(at - (Date.now() + 48 * 3_600_000)) < 60_000, s.at);
        assert.deepEqual(s.header, { "X-Trace": ["abc"] });
      }],
      ["ts.kind.every", {
        subject: "natsched.fire.ts.kind", every: "1d12h", start, max_runs: 3, misfire: "all", catchup: "2h", jitter: "1s",
      }, (s) => {
        assert.equal(s.every, "36h0m0s", "days come back in Go syntax");
        assert.equal(s.misfire, "all");
        assert.equal(s.max_runs, 3);
        assert.ok(s.anchor);
      }],
      ["ts.kind.cron", { subject: "natsched.fire.ts.kind", cron: "0 0 9 * * MON-FRI", tz: "Europe/Berlin", paused: true }, (s) => {
        assert.equal(s.status, "paused");
        assert.equal(s.tz, "Europe/Berlin");
        assert.match(s.next_run ?? "", /T0[78]:00:00Z$/, "09:00 Berlin is 07:00 or 08:00 UTC");
      }],
    ];
    for (const [id, req, check] of cases) {
      conforms("request", req);
      const s = await sched.put(id, req);
      conforms("reply", s);
      assert.equal(s.id, id);
      assert.ok(s.revision > 0);
      check(s);
      const again = await sched.get(id);
      conforms("reply", again);
      assert.equal(again.revision, s.revision);
    }
  });

  test("a put's trace context is stored with the schedule", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const s = await sched.put("ts.traced", { subject: "natsched.fire.ts.traced", in: "1h" }, { traceparent, tracestate: "vendor=1" });
    conforms("reply", s);
    assert.equal(s.traceparent, traceparent);
    assert.equal(s.tracestate, "vendor=1");
    await sched.cancel("ts.traced");
  });

  test("pause, resume, list with a cursor, status", async () => {
    for (const id of ["ts.list.a", "ts.list.b", "ts.list.c"]) {
      await sched.put(id, { subject: "natsched.fire.ts.list", every: "1h" });
    }
    const paused = await sched.pause("ts.list.b");
    conforms("reply", paused);
    assert.equal(paused.status, "paused");
    const resumed = await sched.resume("ts.list.b");
    assert.equal(resumed.status, "active");

    const page = await sched.list({ prefix: "ts.list", limit: 2 });
    conforms("list_reply", page);
    assert.deepEqual(page.schedules.map((s) => s.id), ["ts.list.a", "ts.list.b"]);
    assert.equal(page.next, "ts.list.b");
    const rest = await sched.list({ prefix: "ts.list", after: page.next });
    assert.deepEqual(rest.schedules.map((s) => s.id), ["ts.list.c"]);
    assert.equal(rest.next, "");
    const all: string[] = [];
    for await (const s of sched.listAll({ prefix: "ts.list", limit: 1 })) all.push(s.id);
    assert.deepEqual(all, ["ts.list.a", "ts.list.b", "ts.list.c"]);
    await sched.pause("ts.list.c");
    const onlyPaused = await sched.list({ prefix: "ts.list", status: "paused" });
    assert.deepEqual(onlyPaused.schedules.map((s) => s.id), ["ts.list.c"]);

    const st = await sched.status();
    conforms("status_reply", st);
    assert.equal(st.instance, "ts-test");
    assert.equal(st.leader, "ts-test");
    assert.equal(st.is_leader, true);
    assert.ok(st.pending >= 3);
    assert.ok(st.version.length > 0);
    assert.ok(!Number.isNaN(Date.parse(st.started)));
  });

  test("trigger fires one now: Natsched-Planned and Natsched-Run", async () => {
    await sched.put("ts.trig", { subject: "natsched.fire.ts.trig", cron: "@yearly", paused: true, text: "triggered" });
    const before = Date.now();
    const t = await sched.trigger("ts.trig");
    conforms("reply", t);
    assert.equal(t.runs, 0, "the schedule as it stood when the trigger was accepted");
    const [f] = await firesOf("ts.trig", 1);
    assert.equal(f.run, 1);
    assert.equal(f.subject, "natsched.fire.ts.trig");
    assert.ok(f.occurrence.length > 0, "Nats-Msg-Id");
    assert.match(f.planned, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
    assert.ok(Math.abs(f.plannedAt.getTime() - before) < 5_000, `planned ${f.planned} is the trigger's acceptance`);
    assert.equal(new TextDecoder().decode(f.data), "triggered");
    const after = await eventually("runs counted", async () => {
      const s = await sched.get("ts.trig");
      return s.runs === 1 ? s : undefined;
    });
    assert.equal(after.status, "paused", "a paused schedule stays paused");
    assert.equal(after.last_run, f.planned);
  });

  test("a one-shot fires, then is done; cancel returns it as it was", async () => {
    await sched.put("ts.once", { subject: "natsched.fire.ts.once", in: "200ms", text: "once" });
    const [f] = await firesOf("ts.once", 1);
    assert.equal(f.run, 1);
    const done = await eventually("done", async () => {
      const s = await sched.get("ts.once");
      return s.status === "done" ? s : undefined;
    });
    conforms("reply", done);
    assert.equal(done.next_run, undefined);
    const cancelled = await sched.cancel("ts.once");
    conforms("reply", cancelled);
    assert.equal(cancelled.status, "done");
    await rejects(sched.get("ts.once"), ErrorCode.NotFound);
  });

  test("a custom inbox prefix", async () => {
    const spy = nc.subscribe("ts-inbox.>", { max: 1 });
    const c = new NatschedClient(nc, { inboxPrefix: "ts-inbox" });
    await c.put("ts.inbox", { subject: "natsched.fire.ts.inbox", in: "1h" });
    for await (const m of spy) {
      assert.match(m.subject, /^ts-inbox\./);
    }
    assert.equal((await c.get("ts.inbox")).id, "ts.inbox");
  });
});

describe("errors", testTimeout, () => {
  async function errorBody(subject: string, body: unknown): Promise<void> {
    const m = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: 5000 });
    conforms("error_reply", m.json());
    assert.ok(m.headers?.get("Nats-Service-Error-Code"));
  }

  test("400 names the field", async () => {
    const e = await rejects(sched.put("ts.bad", { subject: "natsched.fire.ts.bad", cron: "* * * * * * * *" }), ErrorCode.Invalid, "cron");
    assert.equal(e.message, "cron: expected 5, 6 or 7 fields, got 8");
    assert.equal(e.reason, "expected 5, 6 or 7 fields, got 8");
    await rejects(sched.put("ts.bad", { subject: "natsched.fire.ts.bad", every: "1 day" }), 400, "every");
    await rejects(sched.put("ts.bad", { subject: "natsched.fire.ts.bad", in: "1h", cronn: "x" } as never), 400, "cronn");
    await rejects(sched.put("ts.bad", { subject: "natsched.fire.ts.bad", in: "1h", text: "a", data: "YQ==" }), 400, "text");
    await rejects(sched.list({ status: "cancelled" as never }), 400, "status");
    // IDs that cannot name a subject are refused before anything is sent.
    await rejects(sched.get("a b"), 400, "id");
    await rejects(sched.get("a.*"), 400, "id");
    await rejects(sched.list({ prefix: "a.>" }), 400, "prefix");
    await errorBody("natsched.api.put.ts.bad", { subject: "natsched.fire.ts.bad", cron: "61 * * * *" });
  });

  test("403 404 409 413 422 503", async () => {
    await rejects(sched.put("ts.forbidden", { subject: "natsched.fire.elsewhere", in: "1h" }), ErrorCode.Forbidden);
    await errorBody("natsched.api.put.ts.forbidden", { subject: "natsched.fire.elsewhere", in: "1h" });

    const nf = await rejects(sched.get("ts.none"), ErrorCode.NotFound);
    assert.equal(nf.message, "schedule ts.none not found");
    await errorBody("natsched.api.get.ts.none", undefined);

    const a = await sched.put("ts.cas", { subject: "natsched.fire.ts.cas", every: "1h" });
    await sched.put("ts.cas", { ...a, revision: a.revision });
    await rejects(sched.put("ts.cas", { ...a, revision: a.revision }), ErrorCode.Conflict);
    await sched.put("ts.done", { subject: "natsched.fire.ts.done", in: "1ms" });
    await eventually("ts.done done", async () => (await sched.get("ts.done")).status === "done");
    await rejects(sched.trigger("ts.done"), ErrorCode.Conflict);

    const big = "x".repeat(70 * 1024);
    const tooLarge = await rejects(sched.put("ts.big", { subject: "natsched.fire.ts.big", in: "1h", header: { "X-Big": big } }), ErrorCode.TooLarge);
    assert.match(tooLarge.message, /^header: /);
    const huge = await rejects(
      sched.put("ts.huge", { subject: "natsched.fire.ts.huge", in: "1h", data: encodeData(new Uint8Array(800 * 1024)) }),
      ErrorCode.TooLarge,
    );
    assert.match(huge.message, /over the server's max payload of 1048576 bytes/);

    // A value in the bucket that is not a schedule: get 422, list skips it,
    // cancel deletes it.
    await js.publish("$KV.natsched_schedules.ts.zzz", "not a schedule");
    const unreadable = await rejects(sched.get("ts.zzz"), ErrorCode.Unreadable);
    assert.match(unreadable.message, /^stored: /);
    await errorBody("natsched.api.get.ts.zzz", undefined);
    const page = await sched.list({ prefix: "ts.zzz" });
    assert.equal(page.skipped, 1);
    await sched.cancel("ts.zzz");

    const nobody = await rejects(new NatschedClient(nc, { prefix: "nobody" }).status(), ErrorCode.Unavailable);
    assert.match(nobody.message, /no natsched service answers on nobody\.api\.status/);
    const silent = nc.subscribe("silent.api.>"); // a responder that never replies
    await nc.flush();
    const late = await rejects(new NatschedClient(nc, { prefix: "silent", timeout: 200 }).get("x"), ErrorCode.Unavailable);
    assert.match(late.message, /no reply on silent\.api\.get\.x within 200ms/);
    silent.unsubscribe();
  });

  test("options are checked", () => {
    assert.throws(() => new NatschedClient(nc, { prefix: "a.b" }), TypeError);
    assert.throws(() => new NatschedClient(nc, { timeout: 0 }), TypeError);
    assert.throws(() => new NatschedClient(nc, { inboxPrefix: "a.*" }), TypeError);
  });
});

describe("durable intake", testTimeout, () => {
  test("publish with Natsched-* headers; the fire carries the other headers", async () => {
    await publishIntake(js, "ts.intake.a", {
      schedule: "@in 500ms", target: "natsched.fire.ts.intake", headers: { "X-Trace": "abc", "X-Multi": ["1", "2"] },
    }, "through the intake");
    const [f] = await firesOf("ts.intake.a", 1);
    assert.equal(new TextDecoder().decode(f.data), "through the intake");
    assert.equal(f.headers.get("X-Trace"), "abc");
    assert.deepEqual(f.headers.values("X-Multi"), ["1", "2"]);
    assert.equal(f.run, 1);
  });

  test("every with options, in days; then cancel through the intake", async () => {
    await publishIntake(js, "ts.intake.every", {
      schedule: "@every 1d", target: "natsched.fire.ts.intake", maxRuns: 2, misfire: "skip", jitter: "1s",
      timeZone: "UTC", start: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const s = await eventually("the intake message is applied", async () => {
      try {
        return await sched.get("ts.intake.every");
      } catch (err) {
        if (err instanceof NatschedError && err.code === 404) return undefined;
        throw err;
      }
    });
    conforms("reply", s);
    assert.equal(s.every, "24h0m0s");
    assert.equal(s.max_runs, 2);
    assert.equal(s.misfire, "skip");
    await cancelIntake(js, "ts.intake.every");
    await eventually("cancelled", async () => {
      try {
        await sched.get("ts.intake.every");
        return undefined;
      } catch (err) {
        return err instanceof NatschedError && err.code === 404;
      }
    });
  });

  test("an invalid intake message is rejected with Natsched-Error", async () => {
    const rejected = nc.subscribe("natsched.rejected.ts.intake.bad", { max: 1 });
    await nc.flush();
    await publishIntake(js, "ts.intake.bad", { schedule: "@in soon", target: "natsched.fire.ts.intake" }, "kept");
    for await (const m of rejected) {
      assert.match(m.headers?.get("Natsched-Error") ?? "", /^Natsched-Schedule: bad duration "soon"/);
      assert.equal(m.string(), "kept");
    }
  });
});

describe("fired messages", testTimeout, () => {
  test("a durable consumer acks what its handler took and redelivers what it threw on", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add("NATSCHED_FIRE", {
      durable_name: "ts_durable", filter_subject: "natsched.fire.ts.durable", ack_policy: AckPolicy.Explicit,
    });
    let attempts = 0;
    const got: Fired[] = [];
    const c = await consumeFired(js, (f) => {
      attempts++;
      if (attempts === 1) throw new Error("first attempt fails");
      got.push(f);
    }, { durable: "ts_durable", onError: () => {} });
    await sched.put("ts.durable", { subject: "natsched.fire.ts.durable", in: "100ms", text: "durable" });
    await eventually("handled after a redelivery", () => got.length === 1);
    assert.equal(attempts, 2);
    assert.equal(got[0].id, "ts.durable");
    await c.stop();
    const info = await jsm.consumers.info("NATSCHED_FIRE", "ts_durable");
    assert.equal(info.num_ack_pending, 0);
  });

  test("fired() refuses a message natsched did not fire", () => {
    const h = headers();
    h.set("X-Other", "1");
    assert.throws(() => fired({ subject: "natsched.fire.ts.x", headers: h, data: new Uint8Array() }), TypeError);
  });
});

describe("example", testTimeout, () => {
  test("src/example.ts runs against the daemon", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(repoRoot, "clients/typescript/dist/src/example.js")], {
      env: { ...process.env, NATS_URL: daemon.url },
      timeout: 60_000,
    });
    assert.match(stdout, /^stored example\.hello, status active, at \d{4}-/m);
    assert.match(stdout, /^fired example\.hello run 1 planned \S+: hello from TypeScript$/m);
    assert.match(stdout, /^fired example\.intake run 1 planned \S+: hello through the intake$/m);
    assert.match(stdout, /^refused: 400 field cron$/m);
  });
});
