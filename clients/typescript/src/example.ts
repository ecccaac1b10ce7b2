// A service in TypeScript using natsched: schedule over the API and over
// the durable intake, consume what fires, handle a typed error.
//
//   NATS_URL=nats://127.0.0.1:4222 node dist/src/example.js
//
// (with `natsched server` running there). The README quotes the part between
// the README markers.
// README: begin
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { consumeFired, NatschedClient, NatschedError, publishIntake } from "./index.js"; // this package

const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const js = jetstream(nc);
const sched = new NatschedClient(nc);

// Consume the fired messages first: they read Natsched-Planned and
// Natsched-Run from the headers.
const seen = new Set<string>();
let allFired: () => void = () => {};
const fired = new Promise<void>((resolve) => (allFired = resolve));
const consumer = await consumeFired(
  js,
  (f) => {
    console.log(`fired ${f.id} run ${f.run} planned ${f.planned}: ${new TextDecoder().decode(f.data)}`);
    seen.add(f.id);
    if (seen.size === 2) allFired();
  },
  { subjects: "natsched.fire.example.>" },
);

// Request/reply: the stored schedule comes back.
const s = await sched.put("example.hello", { subject: "natsched.fire.example.hello", in: "1s", text: "hello from TypeScript" });
console.log(`stored ${s.id}, status ${s.status}, at ${s.at}`);

// Durable intake: publish with JetStream and forget.
await publishIntake(
  js,
  "example.intake",
  { schedule: "@in 1s", target: "natsched.fire.example.intake", headers: { "X-Trace": "abc" } },
  "hello through the intake",
);

// Errors carry the wire code, and for a 400 the field.
try {
  await sched.put("example.bad", { subject: "natsched.fire.example.bad", cron: "61 * * * *" });
} catch (err) {
  if (!(err instanceof NatschedError)) throw err;
  console.log(`refused: ${err.code} field ${err.field}`);
}
// README: end

const timeout = setTimeout(() => {
  console.error("nothing fired within 30s");
  process.exit(1);
}, 30_000);
await fired;
clearTimeout(timeout);
await sched.cancel("example.hello");
await consumer.stop();
await nc.close();
