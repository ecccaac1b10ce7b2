package cli

import (
	"net"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedOptions builds the embedded server's options: --config's file
// first, its listen, store_dir and monitoring port over natsched's
// defaults, and --listen, --store and --monitor given explicitly over the
// file. A non-loopback listen address is refused unless the server
// requires authentication or --insecure is given. Nothing is bound here.
func (f *serverFlags) embeddedOptions() error {
	opts := &server.Options{}
	if f.config != "" {
		var err error
		if opts, err = server.ProcessConfigFile(f.config); err != nil {
			return usagef("--config %s: %s", f.config, strings.TrimSpace(err.Error()))
		}
	}
	auth := requiresAuth(opts)

	host, port := defaultListenHost, defaultListenPort
	if opts.Host != "" {
		host = opts.Host
	}
	if opts.Port != 0 {
		port = opts.Port
	}
	if f.set["listen"] || f.config == "" {
		h, p, err := splitHostPort("--listen", f.listen)
		if err != nil {
			return err
		}
		host, port = h, p
	}
	if !isLoopback(host) && !auth && !f.insecure {
		return usagef("--listen %s is not a loopback address and the embedded server has no authorization: "+
			"give a --config that requires it (users, nkeys, accounts or an operator), or --insecure to let anyone who reaches it in",
			net.JoinHostPort(host, strconv.Itoa(port)))
	}
	f.host, f.listenAddr = host, net.JoinHostPort(host, strconv.Itoa(port))
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default port
	}
	opts.Host, opts.Port = host, port

	if f.set["store"] || opts.StoreDir == "" {
		if f.store == "" {
			return usagef("--store must not be empty")
		}
		opts.StoreDir = f.store
	}
	if f.set["monitor"] {
		h, p, err := splitHostPort("--monitor", f.monitor)
		if err != nil {
			return err
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.HTTPHost, opts.HTTPPort = h, p
	}
	if opts.ServerName == "" {
		opts.ServerName = embeddedName
		if f.set["name"] {
			opts.ServerName = f.name
		}
	}
	opts.JetStream = true
	opts.NoSigs = true
	f.serverOpts = opts

	if f.replicas > 1 {
		return usagef("--replicas %d needs a JetStream cluster: use --nats", f.replicas)
	}
	if tls := f.conn.GivenTLS(); len(tls) > 0 {
		return usagef("%s apply to a server natsched joins over the network; its in-process connection to the embedded server does not use TLS",
			strings.Join(tls, ", "))
	}
	if given := f.conn.GivenCredentials(); len(given) > 0 && !auth {
		return usagef("%s apply to --nats/--server, or to an embedded server whose --config requires authentication; this one requires none",
			strings.Join(given, ", "))
	}
	f.auth = auth
	if auth && f.settings.AuthMethod() == "none" {
		return usagef("--config %s requires authentication, and natsched server connects to it as a client: "+
			"give it the credentials of a user the file allows (--user/--password, --token, --nkey, --creds or a --context without a url)", f.config)
	}
	return nil
}

// Defaults of the embedded server's address.
const (
	defaultListenHost = "127.0.0.1"
	defaultListenPort = 4222
)

// requiresAuth reports whether a client must authenticate: users,
// nkeys, a token, an operator or an auth callout, and no no_auth_user
// that lets anonymous clients in.
func requiresAuth(o *server.Options) bool {
	if o.NoAuthUser != "" {
		return false
	}
	return len(o.Users) > 0 || len(o.Nkeys) > 0 || o.Authorization != "" || o.Username != "" ||
		len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0 || o.AuthCallout != nil
}

// isLoopback: only the loopback interface, by address or as localhost.
// An empty host or 0.0.0.0 listens on every interface.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func splitHostPort(flag, v string) (string, int, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, usagef("%s %q: want HOST:PORT, e.g. 127.0.0.1:4222", flag, v)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, usagef("%s %q: bad port", flag, v)
	}
	return host, p, nil
}
