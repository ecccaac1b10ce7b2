package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/natsched/natsched"
)

// firedLine is one fired message as tail --json prints it.
type firedLine struct {
	Time            string  `json:"time"` // when the stream stored it
	Lateness        string  `json:"lateness"`
	LatenessSeconds float64 `json:"lateness_seconds"`
	ID              string  `json:"id"`
	Run             string  `json:"run"`
	Subject         string  `json:"subject"`
	Planned         string  `json:"planned"`
	Stream          string  `json:"stream"`
	Seq             uint64  `json:"seq"`
}

func tailCommand(e *env) *cobra.Command {
	var (
		asJSON         bool
		count          int
		stream, filter string
		prefix         string
	)
	return clientCommand(e, "tail [PREFIX] [--json] [-n COUNT]", "print fired messages live as they land",
		`Prints the messages fired from now on, as the fire stream stores them:
the time it stored each, its lateness (when tail received it minus
Natsched-Planned), schedule ID, run and subject. PREFIX keeps the
schedules under it (whole ID tokens, as in ls). Reads the stream with an
ordered consumer that starts at new messages and leaves nothing behind;
stops on Ctrl-C (or after -n messages).`,
		maxArgs(1),
		func(cmd *cobra.Command) {
			fs := cmd.Flags()
			fs.IntVarP(&count, "count", "n", 0, "stop after `N` messages (0: run until interrupted)")
			fs.StringVar(&stream, "stream", "", "read this `STREAM` instead of <PREFIX>_FIRE (targets captured elsewhere)")
			fs.StringVar(&filter, "subject", "", "only messages on `SUBJECT` (NATS wildcards)")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object a line")
			cmd.PreRunE = func(_ *cobra.Command, args []string) error {
				var err error
				if prefix, err = prefixArg(args); err != nil {
					return err
				}
				if count < 0 {
					return usagef("--count must not be negative, got %d", count)
				}
				return nil
			}
		},
		func(ctx context.Context, c *conn, _ []string) error {
			if stream == "" {
				stream = c.names().FireStream
			}
			jsc, err := c.jetStream()
			if err != nil {
				return err
			}
			cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
			if filter != "" {
				cfg.FilterSubjects = []string{filter}
			}
			setup, cancel := context.WithTimeout(ctx, c.timeout)
			cons, err := jsc.OrderedConsumer(setup, stream, cfg)
			cancel()
			if err != nil {
				return fmt.Errorf("stream %s: %w", stream, err)
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, done := context.WithCancel(ctx)
			defer done()

			var (
				mu   sync.Mutex
				seen int
				werr error
			)
			handle := func(m jetstream.Msg) {
				id := m.Headers().Get(natsched.HeaderID)
				if prefix != "" && id != prefix && !strings.HasPrefix(id, prefix+".") {
					return
				}
				line := fired(m, stream, time.Now())
				mu.Lock()
				defer mu.Unlock()
				if count > 0 && seen >= count {
					return
				}
				seen++
				if err := printFired(e, line, asJSON); err != nil && werr == nil {
					werr = err
					done()
				}
				if count > 0 && seen >= count {
					done()
				}
			}
			cc, err := cons.Consume(handle)
			if err != nil {
				return fmt.Errorf("stream %s: %w", stream, err)
			}
			// On stderr, so that a --json reader sees only messages; a
			// script waits for it before it makes something fire.
			fmt.Fprintf(e.stderr, "tailing %s from now (Ctrl-C to stop)\n", stream)
			<-ctx.Done()
			cc.Stop()
			<-cc.Closed()
			mu.Lock()
			defer mu.Unlock()
			return werr
		})
}

func fired(m jetstream.Msg, stream string, now time.Time) firedLine {
	h := m.Headers()
	l := firedLine{ID: h.Get(natsched.HeaderID), Run: h.Get(natsched.HeaderRun), Subject: m.Subject(),
		Planned: h.Get(natsched.HeaderPlanned), Stream: stream}
	if meta, err := m.Metadata(); err == nil {
		l.Time = natsched.FormatTime(meta.Timestamp)
		l.Seq = meta.Sequence.Stream
	}
	if planned, err := time.Parse(time.RFC3339Nano, l.Planned); err == nil {
		late := now.Sub(planned)
		l.Lateness, l.LatenessSeconds = late.Round(10*time.Microsecond).String(), late.Seconds()
	}
	return l
}

func printFired(e *env, l firedLine, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		return writeRaw(e.stdout, b)
	}
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	_, err := fmt.Fprintf(e.stdout, "%s  late %-10s  %s  run %s  %s\n",
		orDash(l.Time), orDash(l.Lateness), orDash(l.ID), orDash(l.Run), l.Subject)
	return err
}
