// Command natsched is the natsched daemon and CLI: `natsched server` runs a
// scheduler (with an embedded NATS server unless told to join one); add,
// edit, ls, get, cancel, pause, resume, trigger and status speak its wire
// API; tail and dead read its streams; next checks a cron expression
// locally; version says what it was built from. See `natsched help`.
package main

import (
	"context"
	"os"

	"github.com/natsched/natsched/cmd/natsched/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
