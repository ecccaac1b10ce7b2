/**
 * A TypeScript client of natsched's wire contract over nats.js: the
 * request/reply API on `<prefix>.api.*` (put, get, list, cancel, pause,
 * resume, trigger, status), durable intake publishes to `<prefix>.in.<id>`
 * with the `Natsched-*` headers, and the headers of fired messages
 * (`Natsched-Planned`, `Natsched-Run`, ...).
 *
 * The JSON shapes below follow schema/schedule.schema.json in the natsched
 * repository; the tests validate real replies against it.
 */
import {
  headers as newHeaders,
  nuid,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy } from "@nats-io/jetstream";
import type { Consumer, JetStreamClient, JsMsg, PubAck } from "@nats-io/jetstream";

/** Where a schedule stands. `cancelled` is not a status: cancel deletes. */
export type ScheduleStatus = "active" | "paused" | "done";

/** What happens to occurrences missed while no scheduler ran. */
export type Misfire = "skip" | "once" | "all";

/** A header of fired messages: one value or several. */
export type HeaderValues = Record<string, string | string[]>;

/** The definition fields that requests and replies share. */
export interface ScheduleDefinition {
  /** Target subject; some JetStream stream must capture it (natsched.fire.> by default). */
  subject: string;
  /** Registered type name of the payload, as the Go typed helpers set it. */
  type?: string;
  /** 5 fields, 6 (seconds first), 7 (with year), or a macro such as @daily. */
  cron?: string;
  /** IANA zone the cron expression is read in; default UTC. */
  tz?: string;
  at?: string;
  every?: string;
  start?: string;
  end?: string;
  max_runs?: number;
  misfire?: Misfire;
  catchup?: string;
  jitter?: string;
}

/**
 * The body of a put (the request form). Exactly one of `at`, `in`,
 * `every` and `cron` says when. Durations use Go syntax (`90s`, `1h30m`,
 * `250ms`) with `d` for days (`2d`); times are RFC 3339. The payload is
 * `data` (standard base64) or `text` (UTF-8), not both.
 */
export interface ScheduleRequest extends ScheduleDefinition {
  /** Optional: if given it must equal the id put names. */
  id?: string;
  /** A delay from acceptance; stored and returned as `at`. */
  in?: string;
  paused?: boolean;
  header?: HeaderValues;
  data?: string;
  text?: string;
  /** Non-zero: compare-and-set against the stored revision (409 if it moved on). */
  revision?: number;
}

/** A schedule as the daemon returns it (the reply form); a put's `in` comes back as `at`. */
export interface Schedule extends ScheduleDefinition {
  id: string;
  paused: boolean;
  header?: Record<string, string[]>;
  /** The payload, standard base64 (see {@link payloadOf}). */
  data: string;
  status: ScheduleStatus;
  /** Planned time of the next occurrence, jitter excluded. */
  next_run?: string;
  /** Planned time of the latest occurrence fired. */
  last_run?: string;
  runs: number;
  created: string;
  updated: string;
  revision: number;
  last_error: string;
  /** Changes whenever a put replaces the definition. A 64-bit number: above 2^53 a JavaScript number rounds it. */
  generation: number;
  anchor?: string;
  /** Accepted triggers that have not fired yet. */
  triggers?: string[];
  /** The W3C trace context of whoever created the schedule; each fire is a new span of it. */
  traceparent?: string;
  tracestate?: string;
}

/** Options of a put beyond the schedule. */
export interface PutOptions {
  /** The creator's W3C trace context, sent as the request's traceparent (and tracestate) header. */
  traceparent?: string;
  tracestate?: string;
}

export interface ListOptions {
  /** Whole ID tokens: `billing` lists `billing` and `billing.…`, not `billingx`. */
  prefix?: string;
  /** Empty: every status. */
  status?: ScheduleStatus | "";
  /** Page size; 0 means 100, more than 1000 means 1000. */
  limit?: number;
  /** The previous page's `next`. */
  after?: string;
}

export interface ListPage {
  schedules: Schedule[];
  /** Cursor for the next page; empty at the end. */
  next: string;
  /** Stored values in the page's range that are not schedules. */
  skipped: number;
}

/** The reply of `<prefix>.api.status`: the answering instance's view. */
export interface InstanceStatus {
  instance: string;
  leader: string;
  is_leader: boolean;
  pending: number;
  fired: number;
  late: number;
  duplicates: number;
  publish_failures: number;
  refused: number;
  fenced: number;
  /** natsched's version. */
  version: string;
  /** When the answering instance started (RFC 3339). */
  started: string;
  /** The estimated server clock minus the instance's host clock (Go syntax, may be negative); empty until estimated. */
  clock_offset: string;
  /** The answering instance's partition count. */
  partitions: number;
  /** The partitions the answering instance fires. */
  held_partitions: number[];
  /** The instance holding each partition's lease, by partition ("" while free). */
  partition_leaders: string[];
}

/** The wire codes of error replies. */
export const ErrorCode = {
  Invalid: 400,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  TooLarge: 413,
  Unreadable: 422,
  Unavailable: 503,
} as const;

/**
 * An error reply of the daemon, or a request that got none. `code` is the
 * wire code (503 also when nobody answered or the timeout passed, 413 for a
 * request too large to send); `message` is the daemon's, and for a 400
 * `field` is the field it names (`cron: expected 5, 6 or 7 fields` has
 * field `cron`) and `reason` the rest.
 */
export class NatschedError extends Error {
  readonly code: number;
  readonly field?: string;
  readonly reason?: string;

  constructor(code: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NatschedError";
    this.code = code;
    if (code === ErrorCode.Invalid) {
      const i = message.indexOf(": ");
      this.field = i >= 0 ? message.slice(0, i) : "body";
      this.reason = i >= 0 ? message.slice(i + 2) : message;
    }
  }
}

export interface ClientOptions {
  /** The daemon's --prefix (default `natsched`). */
  prefix?: string;
  /** Milliseconds to wait for each reply (default 5000). */
  timeout?: number;
  /**
   * Receive replies on `<inboxPrefix>.<unique>` instead of the connection's
   * inboxes (for accounts that allow only some reply subjects).
   */
  inboxPrefix?: string;
}

const idPattern = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const prefixPattern = /^[A-Za-z0-9_-]{1,32}$/;

/** Reports whether id is a schedule ID: 1-255 characters, tokens of [A-Za-z0-9_-] joined by dots. */
export function validId(id: string): boolean {
  return id.length > 0 && id.length <= 255 && idPattern.test(id);
}

function checkId(id: string, field = "id"): void {
  if (!validId(id)) {
    throw new NatschedError(
      ErrorCode.Invalid,
      `${field}: ${JSON.stringify(id)} is not 1-255 characters of dot-separated tokens of [A-Za-z0-9_-]`,
    );
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The client of one daemon (or of every instance serving a prefix). */
export class NatschedClient {
  readonly prefix: string;
  readonly timeout: number;
  readonly inboxPrefix?: string;

  constructor(
    readonly nc: NatsConnection,
    opts: ClientOptions = {},
  ) {
    this.prefix = opts.prefix ?? "natsched";
    this.timeout = opts.timeout ?? 5000;
    this.inboxPrefix = opts.inboxPrefix;
    if (!prefixPattern.test(this.prefix)) {
      throw new TypeError(`natsched: prefix ${JSON.stringify(this.prefix)}: want one token of [A-Za-z0-9_-], at most 32 characters`);
    }
    if (!(this.timeout > 0)) {
      throw new TypeError(`natsched: timeout must be positive, got ${this.timeout}`);
    }
    if (this.inboxPrefix !== undefined && !/^[^.\s*>]+(\.[^.\s*>]+)*$/.test(this.inboxPrefix)) {
      throw new TypeError(`natsched: inbox prefix ${JSON.stringify(this.inboxPrefix)}: want a subject without wildcards`);
    }
  }

  /** Creates or replaces schedule id; with `revision`, a compare-and-set. */
  async put(id: string, schedule: ScheduleRequest, opts: PutOptions = {}): Promise<Schedule> {
    checkId(id);
    let h: MsgHdrs | undefined;
    if (opts.traceparent !== undefined) {
      h = newHeaders();
      h.set("traceparent", opts.traceparent);
      if (opts.tracestate !== undefined) h.set("tracestate", opts.tracestate);
    }
    return this.call<Schedule>("put", id, schedule, h);
  }

  get(id: string): Promise<Schedule> {
    return this.byId("get", id);
  }

  /** Deletes the schedule and returns it as it was. */
  cancel(id: string): Promise<Schedule> {
    return this.byId("cancel", id);
  }

  /** Occurrences while paused are skipped; a paused one-shot fires on resume. */
  pause(id: string): Promise<Schedule> {
    return this.byId("pause", id);
  }

  resume(id: string): Promise<Schedule> {
    return this.byId("resume", id);
  }

  /** Fires one extra occurrence now; 409 on a done schedule. Returns the schedule as it stood. */
  trigger(id: string): Promise<Schedule> {
    return this.byId("trigger", id);
  }

  /** One page of schedules, ordered by ID. */
  async list(opts: ListOptions = {}): Promise<ListPage> {
    const { prefix = "", ...body } = opts;
    if (prefix !== "") {
      checkId(prefix, "prefix");
    }
    return this.call<ListPage>("list", prefix, body);
  }

  /** Every schedule the options select, following the pages. */
  async *listAll(opts: Omit<ListOptions, "after"> = {}): AsyncGenerator<Schedule> {
    let after = "";
    for (;;) {
      const page = await this.list({ ...opts, after });
      yield* page.schedules;
      if (page.next === "" || page.next === after) {
        return;
      }
      after = page.next;
    }
  }

  /** The view of whichever instance answers: who leads, pending, fired. */
  status(): Promise<InstanceStatus> {
    return this.call<InstanceStatus>("status", "", undefined);
  }

  private async byId(verb: string, id: string): Promise<Schedule> {
    checkId(id);
    return this.call<Schedule>(verb, id, undefined);
  }

  private async call<T>(verb: string, tail: string, body: unknown, headers?: MsgHdrs): Promise<T> {
    const subject = `${this.prefix}.api.${verb}${tail === "" ? "" : "." + tail}`;
    const data = body === undefined ? undefined : encoder.encode(JSON.stringify(body));
    let msg: Msg;
    try {
      msg = await this.nc.request(
        subject,
        data,
        this.inboxPrefix === undefined
          ? { timeout: this.timeout, headers }
          : { timeout: this.timeout, headers, noMux: true, reply: `${this.inboxPrefix}.${nuid.next()}` },
      );
    } catch (err) {
      throw this.transportError(subject, data?.length ?? 0, err);
    }
    const failure = replyError(msg);
    if (failure) {
      throw failure;
    }
    return JSON.parse(decoder.decode(msg.data)) as T;
  }

  private transportError(subject: string, size: number, err: unknown): NatschedError {
    const causes: unknown[] = [err];
    if (err instanceof Error && err.cause !== undefined) {
      causes.push(err.cause);
    }
    if (causes.some((e) => e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders()))) {
      return new NatschedError(
        ErrorCode.Unavailable,
        `no natsched service answers on ${subject} (is a scheduler running with prefix ${this.prefix}?)`,
        { cause: err },
      );
    }
    if (causes.some((e) => e instanceof TimeoutError)) {
      return new NatschedError(ErrorCode.Unavailable, `no reply on ${subject} within ${this.timeout}ms`, { cause: err });
    }
    if (err instanceof Error && err.message.includes("max_payload")) {
      const max = this.nc.info?.max_payload ?? 0;
      return new NatschedError(
        ErrorCode.TooLarge,
        `data: the request takes ${size} bytes, over the server's max payload of ${max} bytes (the payload travels base64-encoded, a third larger)`,
        { cause: err },
      );
    }
    const text = err instanceof Error ? err.message : String(err);
    return new NatschedError(ErrorCode.Unavailable, `request ${subject}: ${text}`, { cause: err });
  }
}

/**
 * The error of an error reply: micro's `Nats-Service-Error-Code` and
 * `Nats-Service-Error` headers, or the body `{"error":{"code","message"}}`.
 */
export function replyError(msg: Msg): NatschedError | undefined {
  let code = Number(msg.headers?.get("Nats-Service-Error-Code") || 0);
  let message = msg.headers?.get("Nats-Service-Error") ?? "";
  const text = decoder.decode(msg.data);
  if (text.trimStart().startsWith('{"error"')) {
    try {
      const body = JSON.parse(text) as { error?: { code?: number; message?: string } };
      code ||= body.error?.code ?? 0;
      message ||= body.error?.message ?? "";
    } catch {
      // not an error body after all
    }
  }
  if (code === 0 && message === "") {
    return undefined;
  }
  return new NatschedError(code, message || `error reply ${code}`);
}

/** Standard base64 of a UTF-8 string or of bytes, for `data`. */
export function encodeData(payload: string | Uint8Array): string {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  return Buffer.from(bytes).toString("base64");
}

/** The payload of a schedule. */
export function payloadOf(s: Pick<Schedule, "data">): Uint8Array {
  return new Uint8Array(Buffer.from(s.data, "base64"));
}

/** Intake headers (the contract's; they mirror NATS server message schedules). */
export const IntakeHeader = {
  Schedule: "Natsched-Schedule",
  Target: "Natsched-Target",
  TimeZone: "Natsched-Time-Zone",
  Start: "Natsched-Start",
  End: "Natsched-End",
  MaxRuns: "Natsched-Max-Runs",
  Misfire: "Natsched-Misfire",
  Jitter: "Natsched-Jitter",
  Cancel: "Natsched-Cancel",
} as const;

/** A schedule in the intake's header form. */
export interface IntakeSchedule {
  /** `@at <RFC 3339>`, `@in <duration>`, `@every <duration>`, a cron expression or macro. */
  schedule: string;
  /** The subject to deliver to. */
  target: string;
  timeZone?: string;
  start?: string;
  end?: string;
  maxRuns?: number;
  misfire?: Misfire;
  jitter?: string;
  /** Carried to every fired message; names starting Nats- or Natsched- are not. */
  headers?: HeaderValues;
}

/** The headers of an intake message for s. */
export function intakeHeaders(s: IntakeSchedule): MsgHdrs {
  const h = newHeaders();
  for (const [k, v] of Object.entries(s.headers ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) {
      h.append(k, one);
    }
  }
  h.set(IntakeHeader.Schedule, s.schedule);
  h.set(IntakeHeader.Target, s.target);
  const optional: [string, string | number | undefined][] = [
    [IntakeHeader.TimeZone, s.timeZone],
    [IntakeHeader.Start, s.start],
    [IntakeHeader.End, s.end],
    [IntakeHeader.MaxRuns, s.maxRuns],
    [IntakeHeader.Misfire, s.misfire],
    [IntakeHeader.Jitter, s.jitter],
  ];
  for (const [k, v] of optional) {
    if (v !== undefined) {
      h.set(k, String(v));
    }
  }
  return h;
}

export interface IntakeOptions {
  /** The daemon's --prefix (default `natsched`). */
  prefix?: string;
}

/**
 * Publishes schedule id to the durable intake (`<prefix>.in.<id>`) and
 * resolves once JetStream stored it: fire and forget from then on. An
 * invalid message is republished by the daemon to `<prefix>.rejected.<id>`
 * with `Natsched-Error`. A message for an existing id replaces it.
 */
export async function publishIntake(
  js: JetStreamClient,
  id: string,
  s: IntakeSchedule,
  payload: string | Uint8Array = new Uint8Array(),
  opts: IntakeOptions = {},
): Promise<PubAck> {
  checkId(id);
  const data = typeof payload === "string" ? encoder.encode(payload) : payload;
  return js.publish(`${opts.prefix ?? "natsched"}.in.${id}`, data, { headers: intakeHeaders(s) });
}

/** Cancels schedule id through the intake (`Natsched-Cancel: true`). */
export async function cancelIntake(js: JetStreamClient, id: string, opts: IntakeOptions = {}): Promise<PubAck> {
  checkId(id);
  const h = newHeaders();
  h.set(IntakeHeader.Cancel, "true");
  return js.publish(`${opts.prefix ?? "natsched"}.in.${id}`, new Uint8Array(), { headers: h });
}

/** A fired occurrence as its headers describe it. */
export interface Fired {
  subject: string;
  /** Natsched-Id: the schedule's ID. */
  id: string;
  /** Natsched-Planned as sent: RFC 3339 with nanoseconds, the nominal time (jitter excluded). */
  planned: string;
  /** Natsched-Planned as a Date (millisecond precision). */
  plannedAt: Date;
  /** Natsched-Run: 1-based occurrence number, triggers included. */
  run: number;
  /** Nats-Msg-Id: the occurrence ID, the same for every re-publish of this occurrence. */
  occurrence: string;
  /** Natsched-Type, for payloads of the Go typed API. */
  type?: string;
  /** Natsched-Jitter: the delay applied, Go syntax. */
  jitter?: string;
  headers: MsgHdrs;
  data: Uint8Array;
}

/** Reads the natsched headers of a fired message; throws a TypeError for a message natsched did not fire. */
export function fired(m: Pick<JsMsg, "subject" | "headers" | "data">): Fired {
  const h = m.headers;
  const id = h?.get("Natsched-Id") ?? "";
  const planned = h?.get("Natsched-Planned") ?? "";
  const run = Number(h?.get("Natsched-Run") ?? "");
  if (h === undefined || id === "" || planned === "" || !Number.isInteger(run) || run < 1) {
    throw new TypeError(`natsched: ${m.subject}: not a fired message (no Natsched-Id, Natsched-Planned or Natsched-Run)`);
  }
  return {
    subject: m.subject,
    id,
    planned,
    plannedAt: new Date(planned),
    run,
    occurrence: h.get("Nats-Msg-Id"),
    type: h.get("Natsched-Type") || undefined,
    jitter: h.get("Natsched-Jitter") || undefined,
    headers: h,
    data: m.data,
  };
}

export interface ConsumeFiredOptions {
  /** The stream the targets are in (default `NATSCHED_FIRE`). */
  stream?: string;
  /** Subjects to take (an ordered consumer); ignored with `durable`. */
  subjects?: string | string[];
  /**
   * An existing durable consumer: messages are acknowledged when the
   * handler resolves and redelivered (nak) when it throws. Without one, an
   * ordered consumer of the messages published from now on, with no acks.
   */
  durable?: string;
  /** Called when the handler throws (default: console.error); a durable's message is then redelivered. */
  onError?: (err: unknown, f: Fired) => void;
}

/** A running consumer of fired messages. */
export interface FiredConsumer {
  /** Stops taking messages and resolves when the loop has ended. */
  stop(): Promise<void>;
}

/**
 * Hands each fired message on the stream to handler, in order. A message
 * that is not a natsched fire is acknowledged (durable) and skipped.
 */
export async function consumeFired(
  js: JetStreamClient,
  handler: (f: Fired, m: JsMsg) => void | Promise<void>,
  opts: ConsumeFiredOptions = {},
): Promise<FiredConsumer> {
  const stream = opts.stream ?? "NATSCHED_FIRE";
  const consumer: Consumer =
    opts.durable !== undefined
      ? await js.consumers.get(stream, opts.durable)
      : await js.consumers.get(stream, {
          filter_subjects: opts.subjects ?? ">",
          deliver_policy: DeliverPolicy.New,
        });
  const messages = await consumer.consume();
  const acks = opts.durable !== undefined;
  const loop = (async () => {
    for await (const m of messages) {
      let f: Fired;
      try {
        f = fired(m);
      } catch {
        if (acks) m.ack();
        continue;
      }
      try {
        await handler(f, m);
        if (acks) m.ack();
      } catch (err) {
        (opts.onError ?? ((e: unknown) => console.error("natsched: fired-message handler:", e)))(err, f);
        if (acks) m.nak();
      }
    }
  })();
  return {
    async stop() {
      await messages.close();
      await loop;
    },
  };
}
