package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/nats-io/nats.go"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/natsched/natsched"
)

// clientCommand is a command that talks to the daemon: it takes the
// connection flags, and run gets the connection. Checks that need no
// server belong in the command's PreRunE (set by flags), so that a
// mistake is exit 2 even with no server to reach.
func clientCommand(e *env, use, short, long string, args cobra.PositionalArgs,
	flags func(*cobra.Command), run func(ctx context.Context, c *conn, args []string) error) *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			c, err := dial(e, &cf, cmd.Name())
			if err != nil {
				return err
			}
			defer c.close()
			return run(cmd.Context(), c, args)
		},
	}
	cmd.Flags().SortFlags = false
	if flags != nil {
		flags(cmd)
	}
	cf.register(cmd.Flags())
	return cmd
}

func getCommand(e *env) *cobra.Command {
	var asJSON bool
	return clientCommand(e, "get ID [--json]", "show a schedule",
		"Shows the schedule ID; --json prints the wire JSON as received.",
		idArg,
		func(cmd *cobra.Command) { cmd.Flags().BoolVar(&asJSON, "json", false, "print the wire JSON") },
		func(ctx context.Context, c *conn, args []string) error {
			body, err := c.scheduler().get(ctx, args[0])
			if err != nil {
				return err
			}
			return printSchedule(e.stdout, body, asJSON, "")
		})
}

var verbTitle = map[string]string{
	"cancel":  "Cancelled %s; it was:",
	"trigger": "Triggered %s: one extra occurrence fires now.",
}

func verbCommand(e *env, verb, summary string) *cobra.Command {
	var asJSON bool
	return clientCommand(e, verb+" ID [--json]", summary,
		fmt.Sprintf("%s; prints the schedule the service returns (--json: the wire JSON).", upperFirst(summary)),
		idArg,
		func(cmd *cobra.Command) { cmd.Flags().BoolVar(&asJSON, "json", false, "print the wire JSON") },
		func(ctx context.Context, c *conn, args []string) error {
			body, err := c.scheduler().act(ctx, verb, args[0])
			if err != nil {
				return err
			}
			title := verbTitle[verb]
			if title != "" {
				title = fmt.Sprintf(title, args[0])
			}
			return printSchedule(e.stdout, body, asJSON, title)
		})
}

// idArg wants exactly one valid schedule ID.
func idArg(cmd *cobra.Command, args []string) error {
	if err := wantArgs(args, "ID"); err != nil {
		return err
	}
	return checkID(args[0])
}

func statusCommand(e *env) *cobra.Command {
	var asJSON, all bool
	return clientCommand(e, "status [--all] [--json]", "show who leads, how many schedules are pending, fired, late",
		`Asks one scheduler instance (whichever answers) for its view: the leader,
schedules pending in its index, occurrences fired and fired late, version,
start time and clock offset. With --all, every instance answers (on
<prefix>.api.status.all) and each is one row; --json prints one JSON
object per line.`,
		exactArgs(),
		func(cmd *cobra.Command) {
			cmd.Flags().BoolVar(&asJSON, "json", false, "print the wire JSON")
			cmd.Flags().BoolVar(&all, "all", false, "ask every instance, one row each")
		},
		func(ctx context.Context, c *conn, _ []string) error {
			if all {
				bodies, err := statusAll(ctx, c)
				if err != nil {
					return err
				}
				if asJSON {
					for _, b := range bodies {
						if err := writeRaw(e.stdout, b); err != nil {
							return err
						}
					}
					return nil
				}
				return formatStatusRows(e.stdout, bodies)
			}
			body, err := c.scheduler().status(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return writeRaw(e.stdout, body)
			}
			return formatStatus(e.stdout, body)
		})
}

// statusQuiet: status --all stops collecting once no instance has answered
// for this long (or at the request timeout).
const statusQuiet = 300 * time.Millisecond

// statusAll asks every instance for its status and returns the replies,
// sorted by instance name.
func statusAll(ctx context.Context, c *conn) ([][]byte, error) {
	inbox := c.nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(c.prefix+".api.status.all", inbox, nil); err != nil {
		return nil, err
	}
	deadline := time.NewTimer(c.timeout)
	defer deadline.Stop()
	quiet := time.NewTimer(c.timeout)
	defer quiet.Stop()
	var out [][]byte
	for {
		select {
		case m := <-ch:
			if m.Header.Get("Nats-Service-Error-Code") == "" && len(m.Data) > 0 {
				out = append(out, m.Data)
			}
			quiet.Reset(statusQuiet)
		case <-quiet.C:
			return sortByInstance(out), nil
		case <-deadline.C:
			if len(out) == 0 {
				return nil, fmt.Errorf("no natsched instance answers on %s.api.status.all within %s", c.prefix, c.timeout)
			}
			return sortByInstance(out), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func sortByInstance(bodies [][]byte) [][]byte {
	name := func(b []byte) string {
		var s struct{ Instance string }
		_ = json.Unmarshal(b, &s)
		return s.Instance
	}
	slices.SortFunc(bodies, func(a, b []byte) int { return strings.Compare(name(a), name(b)) })
	return bodies
}

// printSchedule prints a schedule reply: raw with --json, else for humans.
func printSchedule(w io.Writer, body []byte, asJSON bool, title string) error {
	if asJSON {
		return writeRaw(w, body)
	}
	var s natsched.Schedule
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("unreadable reply: %v", err)
	}
	if title != "" {
		fmt.Fprintln(w, title)
	}
	return formatSchedule(w, &s, time.Now())
}

func writeRaw(w io.Writer, body []byte) error {
	body = bytes.TrimRight(body, "\n")
	_, err := fmt.Fprintf(w, "%s\n", body)
	return err
}

// checkID rejects IDs that would not make a valid API subject.
func checkID(id string) error {
	if !natsched.ValidID(id) {
		return usagef("id: %q is not 1-255 characters of dot-separated tokens of [A-Za-z0-9_-]", id)
	}
	return nil
}
