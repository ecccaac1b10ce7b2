package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/natsched/natsched/cmd/natsched/internal/bench"
)

// benchCommand hands its arguments to bench untouched: bench has flags of
// its own and parses them itself (with the shared connection flags).
func benchCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:                "bench [flags]",
		Short:              "measure throughput, lateness and memory, optionally against NATS server message schedules",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := bench.MainEnv(cmd.Context(), args, e.getenv, e.stdout, e.stderr); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.SetHelpFunc(func(c *cobra.Command, _ []string) {
		bench.MainEnv(context.Background(), []string{"--help"}, e.getenv, c.OutOrStdout(), c.ErrOrStderr())
	})
	return cmd
}
