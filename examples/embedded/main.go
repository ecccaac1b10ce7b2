// Command embedded is natsched inside a Go service, in one process: it
// starts an embedded nats-server with JetStream, a scheduler with typed
// handlers, schedules an email for one second from now and a weekday
// report, prints the email when its handler gets it, and exits.
//
//	go run ./examples/embedded
//
// The README's "Use it in Go" quotes the parts between the README markers;
// a test runs it (main_test.go).
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	natschedjs "github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// README: begin
// The service's messages: each type is registered under a name, which
// travels as the Natsched-Type header and picks the handler.
type SendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

type DailyReport struct {
	Team string `json:"team"`
}

// README: end

// mailer stands in for the service's mail sender: it hands each email to
// the program's main loop.
type mailer struct{ sent chan SendEmail }

func (m *mailer) Send(ctx context.Context, e SendEmail) error {
	select {
	case m.sent <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliveryWait bounds the wait for the email's delivery.
const deliveryWait = 30 * time.Second

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// An embedded nats-server with JetStream on 127.0.0.1 (a random port,
	// a temporary store); a service would connect to its NATS system.
	srv, err := natschedtest.Start()
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	mail := &mailer{sent: make(chan SendEmail, 1)}

	// README: begin
	// js is a JetStream of github.com/nats-io/nats.go/jetstream; natschedjs
	// is github.com/natsched/natsched/jetstream.
	reg := natsched.NewRegistry()
	if err := natsched.Register[SendEmail](reg, "email.send"); err != nil {
		return err
	}
	if err := natsched.Register[DailyReport](reg, "report.daily"); err != nil {
		return err
	}
	router := natsched.NewRouter(reg)
	err = natsched.Handle(router, func(ctx context.Context, m SendEmail) error {
		return mail.Send(ctx, m)
	})
	if err != nil {
		return err
	}
	err = natsched.Handle(router, func(ctx context.Context, r DailyReport) error {
		return nil // build and send the report
	})
	if err != nil {
		return err
	}

	s, err := natschedjs.New(js, natschedjs.WithRouter(router, natschedjs.ConsumerConfig{Group: "mailer"}))
	if err != nil {
		return err
	}
	// Start creates the buckets and streams, serves the API and campaigns
	// for the lease; Close stops it all and waits.
	if err := s.Start(ctx); err != nil {
		return err
	}
	defer s.Close(context.Background())

	id, err := natsched.ScheduleIn(ctx, s, SendEmail{To: "a@b", Subject: "hello"}, time.Second)
	if err != nil {
		return err
	}
	_, err = natsched.ScheduleCron(ctx, s, DailyReport{Team: "ops"}, "0 9 * * MON-FRI",
		natsched.InZone("Europe/Berlin"), natsched.WithID("report.ops"))
	if err != nil {
		return err
	}
	// README: end

	select {
	case m := <-mail.sent:
		email, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "handled %s: email to %s, %q\n", email.Type, m.To, m.Subject)
	case <-time.After(deliveryWait):
		return fmt.Errorf("the email was not delivered within %s", deliveryWait)
	}
	report, err := s.Get(ctx, "report.ops")
	if err != nil {
		return err
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "report.ops fires next on a weekday at %s Berlin time\n", report.NextRun.In(berlin).Format("15:04"))
	if err := natsched.Cancel(ctx, s, "report.ops"); err != nil {
		return err
	}
	fmt.Fprintln(out, "cancelled report.ops")
	return nil
}
