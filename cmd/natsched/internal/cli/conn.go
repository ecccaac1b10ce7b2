package cli

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/natsched/natsched/cmd/natsched/internal/natsconn"
	natschedjs "github.com/natsched/natsched/jetstream"
)

// Defaults of the connection flags.
const (
	defaultPrefix  = "natsched"
	defaultTimeout = 5 * time.Second
)

// connFlags are the flags of every client command: the nats CLI's
// connection flags, natsched's --prefix and the request --timeout.
type connFlags struct {
	nats    natsconn.Flags
	prefix  string
	timeout time.Duration
}

func (c *connFlags) register(fs *pflag.FlagSet) {
	conn := pflag.NewFlagSet("conn", pflag.ContinueOnError)
	conn.SortFlags = false
	c.nats.AddFlags(conn)
	conn.StringVar(&c.prefix, "prefix", defaultPrefix, "natsched `PREFIX` of the API subjects and streams")
	conn.DurationVar(&c.timeout, "timeout", defaultTimeout, "request `TIMEOUT`")
	markConnection(conn)
	fs.AddFlagSet(conn)
}

func (c *connFlags) validate() error {
	if !natschedjs.ValidPrefix(c.prefix) {
		return usagef("--prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", c.prefix)
	}
	if c.timeout <= 0 {
		return usagef("--timeout must be positive, got %s", c.timeout)
	}
	return nil
}

// conn is a client command's connection to NATS.
type conn struct {
	nc       *nats.Conn
	settings *natsconn.Settings
	prefix   string
	timeout  time.Duration
}

// dial connects as "natsched <cmd>", once, without reconnecting: a client
// command that loses its server fails.
func dial(e *env, c *connFlags, cmd string) (*conn, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	s, err := c.nats.Resolve(e.getenv, natsconn.UseSelectedContext)
	if err != nil {
		return nil, err
	}
	opts, err := s.Options()
	if err != nil {
		return nil, err
	}
	opts = append([]nats.Option{
		nats.Name("natsched " + cmd),
		nats.Timeout(c.timeout),
		nats.NoReconnect(),
	}, opts...)
	nc, err := nats.Connect(s.URL, opts...)
	if err != nil {
		return nil, connectError(s, err)
	}
	return &conn{nc: nc, settings: s, prefix: c.prefix, timeout: c.timeout}, nil
}

// connectError says where the connection went and, for a refusal, which
// credentials were offered: never the credentials themselves.
func connectError(s *natsconn.Settings, err error) error {
	where := natsconn.RedactURLs(s.URL)
	if s.Context != "" {
		where += " (context " + s.Context + ")"
	}
	if isAuthError(err) {
		return fmt.Errorf("cannot connect to %s: %w (credentials: %s)", where, err, s.AuthMethod())
	}
	return fmt.Errorf("cannot connect to %s: %w", where, err)
}

func isAuthError(err error) bool {
	return err == nats.ErrAuthorization || err == nats.ErrAuthExpired || err == nats.ErrAuthRevoked ||
		err != nil && (containsFold(err.Error(), "authorization") || containsFold(err.Error(), "authentication"))
}

func (c *conn) close() { c.nc.Close() }

// jetStream is a JetStream context in the settings' domain.
func (c *conn) jetStream() (jetstream.JetStream, error) {
	return c.settings.JetStream(c.nc)
}

func (c *conn) names() natschedjs.Names { return natschedjs.NamesFor(c.prefix) }
