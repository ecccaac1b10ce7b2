package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/natsched/natsched"
)

// listPageSize is how many schedules one list request asks for.
const listPageSize = 100

func lsCommand(e *env) *cobra.Command {
	var (
		asJSON bool
		status string
		limit  int
		prefix string
	)
	return clientCommand(e, "ls [PREFIX] [--status active|paused|done] [--limit N] [--json]", "list schedules",
		`Lists schedules ordered by ID, following the service's pages to the end.
PREFIX selects whole ID tokens: 'billing' lists billing and billing.*.
--json prints one object {"schedules":[...]}.`,
		maxArgs(1),
		func(cmd *cobra.Command) {
			fs := cmd.Flags()
			fs.StringVar(&status, "status", "", "only schedules with this `STATUS`: active, paused or done")
			fs.IntVar(&limit, "limit", 0, "at most `N` schedules (0: all)")
			fs.BoolVar(&asJSON, "json", false, "print the wire JSON")
			cmd.PreRunE = func(_ *cobra.Command, args []string) error {
				var err error
				if prefix, err = prefixArg(args); err != nil {
					return err
				}
				switch natsched.Status(status) {
				case "", natsched.StatusActive, natsched.StatusPaused, natsched.StatusDone:
				default:
					return usagef("--status must be active, paused or done, got %q", status)
				}
				if limit < 0 {
					return usagef("--limit must not be negative, got %d", limit)
				}
				return nil
			}
		},
		func(ctx context.Context, c *conn, _ []string) error {
			all, err := listAll(ctx, c.scheduler(), prefix, status, limit)
			if err != nil {
				return err
			}
			if asJSON {
				if all == nil {
					all = []json.RawMessage{}
				}
				out, err := json.Marshal(listReply{Schedules: all})
				if err != nil {
					return err
				}
				// Drop "next": the listing is complete.
				out = bytes.Replace(out, []byte(`,"next":""`), nil, 1)
				return writeRaw(e.stdout, out)
			}
			scheds := make([]*natsched.Schedule, 0, len(all))
			for _, raw := range all {
				var s natsched.Schedule
				if err := json.Unmarshal(raw, &s); err != nil {
					return fmt.Errorf("unreadable schedule in list reply: %v", err)
				}
				scheds = append(scheds, &s)
			}
			if len(scheds) == 0 {
				fmt.Fprintln(e.stderr, "no schedules")
				return nil
			}
			return formatTable(e.stdout, scheds)
		})
}

// prefixArg is the optional ID prefix of ls and tail.
func prefixArg(args []string) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	if !natsched.ValidID(args[0]) {
		return "", usagef("prefix %q: want dot-separated tokens of [A-Za-z0-9_-]", args[0])
	}
	return args[0], nil
}

// listAll follows the list cursors to the end, or to limit schedules.
func listAll(ctx context.Context, s scheduler, prefix, status string, limit int) ([]json.RawMessage, error) {
	var all []json.RawMessage
	req := listRequest{Status: status}
	for {
		req.Limit = listPageSize
		if limit > 0 {
			req.Limit = min(listPageSize, limit-len(all))
		}
		page, err := s.list(ctx, prefix, req)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Schedules...)
		if limit > 0 && len(all) >= limit {
			return all[:limit], nil
		}
		// An unchanged cursor would loop forever: a server bug, not ours
		// to spin on.
		if page.Next == "" || page.Next == req.After {
			return all, nil
		}
		req.After = page.Next
	}
}
