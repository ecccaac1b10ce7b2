// Package natsconn turns the connection flags of every natsched command
// that connects (the daemon, the client commands, bench) into nats.go
// options, with the names, environment variables and precedence of the
// nats CLI: a flag beats its environment variable, which beats the
// context (a file written by `nats context save`).
//
//	var cf natsconn.Flags
//	cf.AddFlags(cmd.Flags())
//	...
//	s, err := cf.Resolve(os.Getenv, natsconn.UseSelectedContext)
//	opts, err := s.Options()
//	nc, err := nats.Connect(s.URL, opts...)
//
// Credentials are grouped: the first of flag, environment and context
// that gives any of user, password, token, creds or nkey decides how to
// authenticate, so a --creds on the command line is never mixed with a
// password from the context. Secrets never appear in the errors this
// package returns, nor in Settings.String.
package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/spf13/pflag"
)

// ErrUsage marks a mistake in the connection flags, environment or
// context (exit status 2 in the CLI), as opposed to a failure to connect.
var ErrUsage = errors.New("natsconn: invalid connection settings")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// field names the settings the flags, variables and contexts carry.
type field int

const (
	fServer field = iota
	fContext
	fCreds
	fNKey
	fUser
	fPassword
	fToken
	fTLSCert
	fTLSKey
	fTLSCA
	fTLSFirst
	fInboxPrefix
	fJSDomain
	numFields
)

// flagDef is one connection flag: natscli's name, its environment
// variable and its help. The help text, the environment binding and the
// README's table are all generated from this one list.
type flagDef struct {
	field   field
	name    string
	short   string
	aliases []string // older spellings, accepted and hidden
	env     string
	usage   string // a `WORD` in backquotes names the value in help
	boolean bool
}

var defs = []flagDef{
	{field: fServer, name: "server", short: "s", env: "NATS_URL", usage: "NATS server `URL`s, comma-separated (default nats://127.0.0.1:4222 or the context's)"},
	{field: fContext, name: "context", env: "NATS_CONTEXT", usage: "nats CLI context `NAME` (as saved by 'nats context save'), or a context .json file"},
	{field: fCreds, name: "creds", env: "NATS_CREDS", usage: "user credentials (JWT) `FILE`"},
	{field: fNKey, name: "nkey", env: "NATS_NKEY", usage: "user nkey seed `FILE`"},
	{field: fUser, name: "user", env: "NATS_USER", usage: "`USER` name; without --password it is a token"},
	{field: fPassword, name: "password", env: "NATS_PASSWORD", usage: "`PASSWORD` of --user"},
	{field: fToken, name: "token", env: "NATS_TOKEN", usage: "authentication `TOKEN`"},
	{field: fTLSCert, name: "tlscert", aliases: []string{"tls-cert"}, env: "NATS_CERT", usage: "TLS client certificate `FILE` (with --tlskey)"},
	{field: fTLSKey, name: "tlskey", aliases: []string{"tls-key"}, env: "NATS_KEY", usage: "TLS client key `FILE`"},
	{field: fTLSCA, name: "tlsca", aliases: []string{"tls-ca"}, env: "NATS_CA", usage: "TLS CA certificates `FILE` to verify the server"},
	{field: fTLSFirst, name: "tlsfirst", boolean: true, usage: "TLS handshake before the server's INFO (servers with handshake_first)"},
	{field: fInboxPrefix, name: "inbox-prefix", env: "NATS_INBOX_PREFIX", usage: "`PREFIX` of request inboxes (for accounts that may not use _INBOX.>)"},
	{field: fJSDomain, name: "js-domain", env: "NATS_JS_DOMAIN", usage: "JetStream `DOMAIN` (leaf nodes)"},
}

// Flags holds the connection flags as given on the command line. The zero
// value is ready for AddFlags.
type Flags struct {
	vals [numFields]value
}

// value is a flag value that remembers whether it was set, so that an
// empty --server="" is a mistake and not the default.
type value struct {
	s       string
	set     bool
	boolean bool
}

func (v *value) Set(s string) error {
	if v.boolean {
		switch strings.ToLower(s) {
		case "true", "1", "t", "yes":
			s = "true"
		case "false", "0", "f", "no":
			s = "false"
		default:
			return fmt.Errorf("want true or false, got %q", s)
		}
	}
	v.s, v.set = s, true
	return nil
}

func (v *value) String() string { return v.s }

func (v *value) Type() string {
	if v.boolean {
		return "bool"
	}
	return "string"
}

// FlagOption adjusts AddFlags.
type FlagOption func(*addConfig)

type addConfig struct {
	serverAliases []string
	only          map[field]bool
}

// ServerAlias also accepts the server URLs as --name (the daemon's and
// bench's --nats).
func ServerAlias(name string) FlagOption {
	return func(c *addConfig) { c.serverAliases = append(c.serverAliases, name) }
}

// AddFlags registers the connection flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet, opts ...FlagOption) {
	var c addConfig
	for _, o := range opts {
		o(&c)
	}
	for _, d := range defs {
		v := &f.vals[d.field]
		v.boolean = d.boolean
		usage := d.usage
		if d.env != "" {
			usage += " ($" + d.env + ")"
		}
		fl := fs.VarPF(v, d.name, d.short, usage)
		if d.boolean {
			fl.NoOptDefVal = "true"
		}
		aliases := d.aliases
		if d.field == fServer {
			for _, a := range c.serverAliases {
				fs.Var(v, a, "NATS server `URL`s: the same as --server")
			}
		}
		for _, a := range aliases {
			fs.Var(v, a, "old spelling of --"+d.name)
			_ = fs.MarkHidden(a)
		}
	}
}

// FlagNames lists the connection flags as help shows them, for
// documentation checks.
func FlagNames() []string {
	names := make([]string, 0, len(defs))
	for _, d := range defs {
		names = append(names, d.name)
	}
	return names
}

// Set reports whether the named connection flag (or one of its aliases)
// was given on the command line.
func (f *Flags) Set(name string) bool {
	for _, d := range defs {
		if d.name == name || slices.Contains(d.aliases, name) {
			return f.vals[d.field].set
		}
	}
	return false
}

// Server returns the --server value as given ("" when not given).
func (f *Flags) Server() (string, bool) { v := f.vals[fServer]; return v.s, v.set }

// GivenCredentials names the credential flags given on the command line.
func (f *Flags) GivenCredentials() []string {
	var out []string
	for _, fl := range []field{fContext, fCreds, fNKey, fUser, fPassword, fToken} {
		if f.vals[fl].set {
			out = append(out, "--"+defs[fl].name)
		}
	}
	return out
}

// GivenTLS names the TLS flags given on the command line.
func (f *Flags) GivenTLS() []string {
	var out []string
	for _, fl := range []field{fTLSCert, fTLSKey, fTLSCA, fTLSFirst} {
		if f.vals[fl].set {
			out = append(out, "--"+defs[fl].name)
		}
	}
	return out
}

// ContextMode says which contexts Resolve may read.
type ContextMode int

const (
	// UseSelectedContext reads --context, else $NATS_CONTEXT, else the
	// context selected with `nats context select`: the client commands.
	UseSelectedContext ContextMode = iota
	// ExplicitContextOnly reads --context or $NATS_CONTEXT only: a daemon
	// does not follow whatever context a shell happens to have selected.
	ExplicitContextOnly
)

// Source says where a setting came from.
type Source string

const (
	FromDefault Source = "default"
	FromFlag    Source = "flag"
	FromEnv     Source = "environment"
	FromContext Source = "context"
)

// Settings are the resolved connection settings.
type Settings struct {
	URL         string // comma-separated server URLs
	URLSource   Source
	Context     string // the context read, if any
	ContextPath string

	User, Password, Token  string
	Creds, NKey            string // paths, or data:/env:// references from a context
	UserJWT, UserSeed      string // from a context
	TLSCert, TLSKey, TLSCA string
	TLSFirst               bool
	InboxPrefix            string
	JSDomain, JSAPIPrefix  string

	getenv func(string) string
}

// String describes the settings without secrets.
func (s *Settings) String() string {
	auth := s.AuthMethod()
	out := "url=" + RedactURLs(s.URL) + " auth=" + auth
	if s.Context != "" {
		out += " context=" + s.Context
	}
	return out
}

// AuthMethod names how the settings authenticate: none, user, token,
// creds, nkey or jwt.
func (s *Settings) AuthMethod() string {
	switch {
	case s.User != "":
		return "user"
	case s.Creds != "":
		return "creds"
	case s.NKey != "":
		return "nkey"
	case s.UserJWT != "":
		return "jwt"
	case s.Token != "":
		return "token"
	}
	return "none"
}

// Resolve applies flag over environment over context. getenv reads the
// environment (os.Getenv in the binary; tests pass their own). A mistake
// in the settings wraps ErrUsage.
func (f *Flags) Resolve(getenv func(string) string, mode ContextMode) (*Settings, error) {
	env := func(fl field) string {
		if d := defs[fl]; d.env != "" {
			return getenv(d.env)
		}
		return ""
	}
	s := &Settings{getenv: getenv}
	var cx *contextFile
	name := f.vals[fContext].s
	switch {
	case f.vals[fContext].set:
		if name == "" {
			return nil, usagef("--context: empty name")
		}
	case env(fContext) != "":
		name = env(fContext)
	case mode == UseSelectedContext:
		sel, err := selectedContext(getenv)
		if err != nil {
			return nil, err
		}
		name = sel
	}
	if name != "" {
		var err error
		if cx, err = loadContext(getenv, name); err != nil {
			return nil, err
		}
		s.Context, s.ContextPath = cx.name, cx.path
	}
	ctxVal := func(fl field) string {
		if cx == nil {
			return ""
		}
		return cx.get(fl)
	}
	// pick is flag over environment over context, one setting at a time.
	pick := func(fl field) (string, Source) {
		if v := f.vals[fl]; v.set {
			return v.s, FromFlag
		}
		if v := env(fl); v != "" {
			return v, FromEnv
		}
		if v := ctxVal(fl); v != "" {
			return v, FromContext
		}
		return "", FromDefault
	}
	s.URL, s.URLSource = pick(fServer)
	if strings.TrimSpace(s.URL) == "" {
		if s.URLSource == FromFlag {
			return nil, usagef("--server: empty URL")
		}
		s.URL, s.URLSource = nats.DefaultURL, FromDefault
	}
	s.TLSCert, _ = pick(fTLSCert)
	s.TLSKey, _ = pick(fTLSKey)
	s.TLSCA, _ = pick(fTLSCA)
	if v := f.vals[fTLSFirst]; v.set {
		s.TLSFirst = v.s == "true"
	} else if cx != nil {
		s.TLSFirst = cx.TLSFirst
	}
	s.InboxPrefix, _ = pick(fInboxPrefix)
	s.JSDomain, _ = pick(fJSDomain)
	if cx != nil {
		s.JSAPIPrefix = cx.JSAPIPrefix
	}

	// Credentials come as a group from the first level that gives any.
	creds := []field{fUser, fPassword, fToken, fCreds, fNKey}
	levels := []struct {
		src Source
		get func(field) string
	}{
		{FromFlag, func(fl field) string { return f.vals[fl].s }},
		{FromEnv, env},
		{FromContext, ctxVal},
	}
	for _, l := range levels {
		any := false
		for _, fl := range creds {
			if l.get(fl) != "" {
				any = true
			}
		}
		if l.src == FromContext && cx != nil && (cx.UserJWT != "" || cx.UserSeed != "") {
			any = true
			s.UserJWT, s.UserSeed = cx.UserJWT, cx.UserSeed
		}
		if !any {
			continue
		}
		s.User, s.Password, s.Token = l.get(fUser), l.get(fPassword), l.get(fToken)
		s.Creds, s.NKey = l.get(fCreds), l.get(fNKey)
		if err := s.checkCredentials(l.src); err != nil {
			return nil, err
		}
		break
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkCredentials normalises one level's credentials: a user without a
// password is a token (as in the nats CLI), and one way to authenticate
// is chosen, not several.
func (s *Settings) checkCredentials(src Source) error {
	where := map[Source]string{FromFlag: "flags", FromEnv: "environment variables", FromContext: "context " + s.Context}[src]
	if s.Password != "" && s.User == "" {
		return usagef("a password without a user (in the %s)", where)
	}
	if s.User != "" && s.Password == "" {
		if s.Token != "" {
			return usagef("a user without a password is a token, and a token is given too (in the %s)", where)
		}
		s.Token, s.User = s.User, ""
	}
	var ways []string
	if s.User != "" {
		ways = append(ways, "user and password")
	}
	if s.Token != "" {
		ways = append(ways, "token")
	}
	if s.Creds != "" {
		ways = append(ways, "creds")
	}
	if s.NKey != "" {
		ways = append(ways, "nkey")
	}
	if s.UserJWT != "" {
		ways = append(ways, "user JWT")
	}
	if len(ways) > 1 {
		return usagef("give one way to authenticate, not %s (in the %s)", strings.Join(ways, " and "), where)
	}
	if s.UserSeed != "" && s.UserJWT == "" {
		return usagef("context %s: user_seed without user_jwt", s.Context)
	}
	return nil
}

func (s *Settings) check() error {
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return usagef("--tlscert and --tlskey go together")
	}
	if s.JSDomain != "" && s.JSAPIPrefix != "" {
		return usagef("a JetStream domain and a JetStream API prefix (context %s) do not go together", s.Context)
	}
	for _, u := range strings.Split(s.URL, ",") {
		if _, err := url.Parse(strings.TrimSpace(u)); err != nil {
			return usagef("--server: %s is not a URL", RedactURLs(u))
		}
	}
	return nil
}

// External reports whether the settings name a server: a flag, the
// environment or a context. With the default URL, natsched server starts
// its embedded server.
func (s *Settings) External() bool { return s.URLSource != FromDefault }

// Options are the nats.go options for the settings: authentication, TLS
// and the inbox prefix. The caller adds its own (name, timeouts,
// reconnects).
func (s *Settings) Options() ([]nats.Option, error) {
	opts, err := s.AuthOptions()
	if err != nil {
		return nil, err
	}
	if s.TLSCert != "" {
		if err := readable(s.TLSCert, "--tlscert"); err != nil {
			return nil, err
		}
		if err := readable(s.TLSKey, "--tlskey"); err != nil {
			return nil, err
		}
		opts = append(opts, nats.ClientCert(s.TLSCert, s.TLSKey))
	}
	if s.TLSCA != "" {
		if err := readable(s.TLSCA, "--tlsca"); err != nil {
			return nil, err
		}
		opts = append(opts, nats.RootCAs(s.TLSCA))
	}
	if s.TLSFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	if s.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(s.InboxPrefix))
	}
	return opts, nil
}

// AuthOptions are only the authentication options: what the daemon's
// in-process connection to its embedded server needs (TLS does not apply
// in process).
func (s *Settings) AuthOptions() ([]nats.Option, error) {
	switch {
	case s.User != "":
		pw, err := resolveSecret(s.Password, "password", s.getenv)
		if err != nil {
			return nil, err
		}
		return []nats.Option{nats.UserInfo(s.User, pw)}, nil
	case s.Token != "":
		tok, err := resolveSecret(s.Token, "token", s.getenv)
		if err != nil {
			return nil, err
		}
		return []nats.Option{nats.Token(tok)}, nil
	case s.Creds != "":
		return credsOption(s.Creds, s.getenv)
	case s.NKey != "":
		return nkeyOption(s.NKey, s.getenv)
	case s.UserJWT != "":
		jwt, err := resolveSecret(s.UserJWT, "user_jwt", s.getenv)
		if err != nil {
			return nil, err
		}
		seed, err := resolveSecret(s.UserSeed, "user_seed", s.getenv)
		if err != nil {
			return nil, err
		}
		return []nats.Option{nats.UserJWTAndSeed(jwt, seed)}, nil
	}
	return nil, nil
}

// JetStream is a JetStream context on nc in the settings' domain (or with
// the context's API prefix).
func (s *Settings) JetStream(nc *nats.Conn, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	switch {
	case s.JSDomain != "":
		return jetstream.NewWithDomain(nc, s.JSDomain, opts...)
	case s.JSAPIPrefix != "":
		return jetstream.NewWithAPIPrefix(nc, s.JSAPIPrefix, opts...)
	}
	return jetstream.New(nc, opts...)
}

func readable(path, what string) error {
	f, err := os.Open(path)
	if err != nil {
		return usagef("%s: %v", what, pathError(err))
	}
	_ = f.Close()
	return nil
}

// pathError keeps the operation and path of a file error and drops the
// rest, which can never hold a secret but is noise.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %v", pe.Op, pe.Path, pe.Err)
	}
	return err
}

// credsOption reads a creds file lazily (nats.go re-reads it on each
// reconnect); a data: or env:// reference from a context is resolved now.
func credsOption(ref string, getenv func(string) string) ([]nats.Option, error) {
	if path, ok := filePath(ref); ok {
		if err := readable(path, "--creds"); err != nil {
			return nil, err
		}
		return []nats.Option{nats.UserCredentials(path)}, nil
	}
	b, err := resolveBytes(ref, "creds", getenv)
	if err != nil {
		return nil, err
	}
	jwt, err := nkeys.ParseDecoratedJWT(b)
	if err != nil {
		return nil, usagef("creds: not a credentials file")
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, usagef("creds: no nkey seed in the credentials")
	}
	return []nats.Option{nats.UserJWT(
		func() (string, error) { return jwt, nil },
		func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) },
	)}, nil
}

func nkeyOption(ref string, getenv func(string) string) ([]nats.Option, error) {
	var b []byte
	if path, ok := filePath(ref); ok {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, usagef("--nkey: %v", pathError(err))
		}
		b = raw
	} else {
		raw, err := resolveBytes(ref, "nkey", getenv)
		if err != nil {
			return nil, err
		}
		b = raw
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, usagef("--nkey: no nkey seed in it")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, usagef("--nkey: not a user seed")
	}
	return []nats.Option{nats.Nkey(pub, kp.Sign)}, nil
}

// RedactURLs hides passwords and tokens in a comma-separated URL list.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			if err != nil && strings.Contains(p, "@") {
				p = "<unparsable URL>"
			}
			parts[i] = p
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
