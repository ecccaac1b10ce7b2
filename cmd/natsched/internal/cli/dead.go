package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/natsched/natsched"
	natschedjs "github.com/natsched/natsched/jetstream"
)

// deadEntry is one message of the dead-letter stream as dead ls shows it.
type deadEntry struct {
	Seq        uint64              `json:"seq"`
	Time       string              `json:"time"`
	Kind       string              `json:"kind"` // "dead" (a handler gave up) or "rejected" (intake)
	Subject    string              `json:"subject"`
	ReplayTo   string              `json:"replay_to"`
	ID         string              `json:"id,omitempty"`
	Error      string              `json:"error"`
	Deliveries string              `json:"deliveries,omitempty"`
	Header     map[string][]string `json:"header,omitempty"`
	Data       string              `json:"data"`
}

// replayTarget is where dead replay publishes a message stored on subject:
// a dead letter <prefix>.dead.<original> back to <original>, a rejected
// intake message <prefix>.rejected.<id> back to the intake,
// <prefix>.in.<id>.
func replayTarget(n natschedjs.Names, subject string) (kind, target string, ok bool) {
	if rest, found := strings.CutPrefix(subject, n.DeadPrefix+"."); found && rest != "" {
		return "dead", rest, true
	}
	if id, found := strings.CutPrefix(subject, n.RejectedPrefix+"."); found && id != "" {
		return "rejected", n.IntakePrefix + "." + id, true
	}
	return "", "", false
}

func deadCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead ls|replay",
		Short: "list dead letters and rejected intake messages; republish one",
		Long: `Reads <PREFIX>_DEAD: dead letters (<prefix>.dead.<subject>: a handler
group gave up on a fired message) and rejected intake messages
(<prefix>.rejected.<id>: an intake message that was not a valid
schedule), each with its Natsched-Error.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("missing subcommand: ls or replay")
			}
			return usagef("unknown subcommand %q: want ls or replay", args[0])
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.AddCommand(deadLsCommand(e), deadReplayCommand(e))
	return cmd
}

func deadLsCommand(e *env) *cobra.Command {
	var asJSON bool
	return clientCommand(e, "ls [--json]", "list dead letters and rejected intake messages",
		`Lists every message in <PREFIX>_DEAD, oldest first: its stream sequence
(what 'natsched dead replay' takes), time, kind, schedule ID, the subject a
replay publishes to, and its error. --json adds headers and data (base64).`,
		exactArgs(),
		func(cmd *cobra.Command) { cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON") },
		func(ctx context.Context, c *conn, _ []string) error {
			entries, err := readDead(ctx, c)
			if err != nil {
				return err
			}
			if asJSON {
				if entries == nil {
					entries = []deadEntry{}
				}
				b, err := json.Marshal(map[string]any{"messages": entries})
				if err != nil {
					return err
				}
				return writeRaw(e.stdout, b)
			}
			if len(entries) == 0 {
				fmt.Fprintln(e.stderr, "no dead letters or rejected intake messages")
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tID\tREPLAY TO\tERROR")
			for _, d := range entries {
				id := d.ID
				if id == "" {
					id = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.Time, d.Kind, id, d.ReplayTo, d.Error)
			}
			return tw.Flush()
		})
}

// readDead reads the dead-letter stream from its first message to the last
// one stored when it started (or none is pending), with an ordered
// consumer.
func readDead(ctx context.Context, c *conn) ([]deadEntry, error) {
	n := c.names()
	jsc, err := c.jetStream()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st, err := jsc.Stream(ctx, n.DeadStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", n.DeadStream, err)
	}
	last := st.CachedInfo().State.LastSeq
	if st.CachedInfo().State.Msgs == 0 {
		return nil, nil
	}
	cons, err := jsc.OrderedConsumer(ctx, n.DeadStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", n.DeadStream, err)
	}
	var out []deadEntry
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(c.timeout))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", n.DeadStream, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			d := deadEntry{Seq: meta.Sequence.Stream, Time: natsched.FormatTime(meta.Timestamp), Subject: m.Subject(),
				Error: m.Headers().Get(natsched.HeaderError), Deliveries: m.Headers().Get(natsched.HeaderDeliveries),
				Header: m.Headers(), Data: base64.StdEncoding.EncodeToString(m.Data())}
			var ok bool
			d.Kind, d.ReplayTo, ok = replayTarget(n, d.Subject)
			switch {
			case !ok:
				d.Kind, d.ReplayTo = "other", "-"
			case d.Kind == "rejected":
				d.ID = strings.TrimPrefix(d.Subject, n.RejectedPrefix+".")
			default:
				d.ID = m.Headers().Get(natsched.HeaderID)
			}
			out = append(out, d)
			// Nothing pending for the consumer: the end, as of now.
			if meta.Sequence.Stream >= last || meta.NumPending == 0 {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("read %s: %w", n.DeadStream, err)
		}
		if got == 0 {
			// Purged or expired under us: what is there has been read.
			return out, nil
		}
	}
}

func deadReplayCommand(e *env) *cobra.Command {
	var (
		asJSON, del bool
		seq         uint64
	)
	return clientCommand(e, "replay SEQ [--delete] [--json]", "republish a dead letter or rejected intake message",
		`Republishes the message at sequence SEQ of <PREFIX>_DEAD ('natsched dead
ls' lists them) with JetStream: a dead letter <prefix>.dead.<subject> to
<subject>, where its handler group gets it again; a rejected intake message
<prefix>.rejected.<id> to the intake <prefix>.in.<id>, where the scheduler
reads it again (fix the cause first: an unchanged invalid message is
rejected again). Its headers and body go as stored, without Natsched-Error
and Natsched-Deliveries. The publish carries the message ID
natsched-replay:<stream>:<SEQ>, so replaying one twice within the stream's
duplicate window publishes it once. --delete removes it from the
dead-letter stream once replayed.`,
		func(cmd *cobra.Command, args []string) error {
			if err := wantArgs(args, "SEQ"); err != nil {
				return err
			}
			n, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || n == 0 {
				return usagef("SEQ %q: want a stream sequence number (see 'natsched dead ls')", args[0])
			}
			seq = n
			return nil
		},
		func(cmd *cobra.Command) {
			cmd.Flags().BoolVar(&del, "delete", false, "delete the message from the dead-letter stream once replayed")
			cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
		},
		func(ctx context.Context, c *conn, _ []string) error {
			n := c.names()
			jsc, err := c.jetStream()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			st, err := jsc.Stream(ctx, n.DeadStream)
			if err != nil {
				return fmt.Errorf("stream %s: %w", n.DeadStream, err)
			}
			raw, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("%s has no message at sequence %d (see 'natsched dead ls')", n.DeadStream, seq)
			}
			if err != nil {
				return fmt.Errorf("get %s sequence %d: %w", n.DeadStream, seq, err)
			}
			_, target, ok := replayTarget(n, raw.Subject)
			if !ok {
				return fmt.Errorf("%s sequence %d is on %s, neither %s.> nor %s.>: nothing to replay it to", n.DeadStream, seq, raw.Subject, n.DeadPrefix, n.RejectedPrefix)
			}
			msg := nats.NewMsg(target)
			for k, v := range raw.Header {
				if strings.EqualFold(k, natsched.HeaderError) || strings.EqualFold(k, natsched.HeaderDeliveries) ||
					strings.HasPrefix(strings.ToLower(k), "nats-") {
					continue
				}
				msg.Header[k] = v
			}
			msg.Data = raw.Data
			id := fmt.Sprintf("natsched-replay:%s:%d", n.DeadStream, seq)
			ack, err := jsc.PublishMsg(ctx, msg, jetstream.WithMsgID(id))
			switch {
			case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
				return fmt.Errorf("no stream captures %s: nothing was replayed", target)
			case err != nil:
				return fmt.Errorf("publish to %s: %w", target, err)
			case ack.Duplicate:
				return fmt.Errorf("%s sequence %d was already replayed to %s (stream %s dropped this copy as a duplicate)", n.DeadStream, seq, target, ack.Stream)
			}
			if del {
				if err := st.DeleteMsg(ctx, seq); err != nil {
					return fmt.Errorf("replayed to %s (stream %s sequence %d), but deleting it from %s failed: %w", target, ack.Stream, ack.Sequence, n.DeadStream, err)
				}
			}
			if asJSON {
				b, err := json.Marshal(map[string]any{"seq": seq, "subject": target, "stream": ack.Stream, "stream_seq": ack.Sequence, "deleted": del})
				if err != nil {
					return err
				}
				return writeRaw(e.stdout, b)
			}
			fmt.Fprintf(e.stdout, "Replayed %s sequence %d to %s (stream %s, sequence %d).\n", n.DeadStream, seq, target, ack.Stream, ack.Sequence)
			return nil
		})
}
