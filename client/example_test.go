package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/client"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

type Invoice struct {
	Customer int `json:"customer"`
}

// A service scheduling through a running daemon. So that the example runs
// alone, the daemon's part (an embedded NATS server and a scheduler
// serving the API, as `natsched server` runs them) starts in the same
// process; against a real daemon, connect to its NATS URL instead.
func Example() {
	ctx := context.Background()
	srv, stop, err := runDaemon(ctx)
	if err != nil {
		panic(err)
	}
	defer stop()
	url := srv.URL()

	// README: begin
	nc, err := nats.Connect(url) // the NATS system `natsched server` runs on
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	reg := natsched.NewRegistry()
	if err := natsched.Register[Invoice](reg, "billing.invoice"); err != nil {
		panic(err)
	}
	s, err := client.New(nc, client.WithRegistry(reg)) // client.WithPrefix, WithTimeout, WithInboxPrefix
	if err != nil {
		panic(err)
	}

	// 09:00:00 Berlin time on the 1st of each month (6 fields: seconds first).
	id, err := natsched.ScheduleCron(ctx, s, Invoice{Customer: 42}, "0 0 9 1 * *",
		natsched.InZone("Europe/Berlin"), natsched.WithID("billing.invoice.42"))
	if err != nil {
		panic(err)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		panic(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	fmt.Println(got.ID, got.Type, got.Status, got.NextRun.In(berlin).Format("day 2 at 15:04:05"))

	// Errors map back to natsched's sentinels, the daemon's message kept.
	_, err = s.Get(ctx, "billing.invoice.43")
	fmt.Println(errors.Is(err, natsched.ErrNotFound), err)
	_, err = s.Put(ctx, &natsched.Schedule{ID: "billing.bad", Subject: "natsched.fire.billing", Cron: "61 * * * *"})
	var fe *natsched.FieldError
	if errors.As(err, &fe) {
		fmt.Println("invalid", fe.Field)
	}
	if err := natsched.Cancel(ctx, s, id); err != nil {
		panic(err)
	}
	// README: end

	// Output:
	// billing.invoice.42 billing.invoice active day 1 at 09:00:00
	// true schedule billing.invoice.43 not found
	// invalid cron
}

// runDaemon runs an embedded NATS server and a scheduler that serves the
// API on it.
func runDaemon(ctx context.Context) (*natschedtest.Server, func(), error) {
	srv, err := natschedtest.Start()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	jsc, err := js.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, nil, err
	}
	s, err := jetstream.New(jsc, jetstream.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err == nil {
		err = s.Start(ctx)
	}
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, nil, err
	}
	return srv, func() {
		_ = s.Close(context.Background())
		nc.Close()
		srv.Shutdown()
	}, nil
}
