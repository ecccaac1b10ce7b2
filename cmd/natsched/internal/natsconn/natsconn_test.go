package natsconn

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// savedContext is a context file exactly as `nats context save` (natscli
// v0.5.0) writes it, with the fields given.
func savedContext(fields map[string]string) string {
	order := []string{"description", "url", "socks_proxy", "token", "user", "password", "creds", "nkey", "cert", "key", "ca",
		"nsc", "jetstream_domain", "jetstream_api_prefix", "jetstream_event_prefix", "inbox_prefix", "user_jwt", "user_seed", "color_scheme"}
	var b strings.Builder
	b.WriteString("{\n")
	for _, k := range order {
		v := fields[k]
		if k == "url" && v == "" {
			v = "nats://127.0.0.1:4222" // natscli writes its default
		}
		b.WriteString(`  "` + k + `": "` + v + `",` + "\n")
	}
	tlsFirst := "false"
	if fields["tls_first"] == "true" {
		tlsFirst = "true"
	}
	b.WriteString(`  "tls_first": ` + tlsFirst + ",\n")
	b.WriteString(`  "windows_cert_store": "",` + "\n" + `  "windows_cert_match_by": "",` + "\n" +
		`  "windows_cert_match": "",` + "\n" + `  "windows_ca_certs_match": null` + "\n}")
	return b.String()
}

// configHome writes contexts (name → JSON) under a fresh XDG_CONFIG_HOME,
// selects selected (if not empty) and returns an environment for Resolve.
func configHome(t *testing.T, contexts map[string]string, selected string, env map[string]string) func(string) string {
	t.Helper()
	xdg := t.TempDir()
	dir := filepath.Join(xdg, "nats", "context")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	for name, body := range contexts {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o600))
	}
	if selected != "" {
		// natscli writes the name without a newline.
		require.NoError(t, os.WriteFile(filepath.Join(xdg, "nats", "context.txt"), []byte(selected), 0o600))
	}
	all := map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": t.TempDir()}
	for k, v := range env {
		all[k] = v
	}
	return func(k string) string { return all[k] }
}

func parse(t *testing.T, args ...string) *Flags {
	t.Helper()
	var f Flags
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.AddFlags(fs, ServerAlias("nats"))
	require.NoError(t, fs.Parse(args))
	return &f
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	ctx := map[string]string{
		"dev":  savedContext(map[string]string{"url": "nats://ctx:4222", "user": "ctxuser", "password": "ctxpw", "inbox_prefix": "_CTX", "jetstream_domain": "hub", "tls_first": "true"}),
		"prod": savedContext(map[string]string{"url": "nats://prod:4222", "creds": "~/prod.creds"}),
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		selected string
		mode     ContextMode
		check    func(t *testing.T, s *Settings)
	}{
		{name: "defaults", check: func(t *testing.T, s *Settings) {
			require.Equal(t, "nats://127.0.0.1:4222", s.URL)
			require.Equal(t, FromDefault, s.URLSource)
			require.False(t, s.External())
			require.Equal(t, "none", s.AuthMethod())
		}},
		{name: "selected context", selected: "dev", check: func(t *testing.T, s *Settings) {
			require.Equal(t, "nats://ctx:4222", s.URL)
			require.Equal(t, FromContext, s.URLSource)
			require.Equal(t, "dev", s.Context)
			require.Equal(t, "ctxuser", s.User)
			require.Equal(t, "ctxpw", s.Password)
			require.Equal(t, "_CTX", s.InboxPrefix)
			require.Equal(t, "hub", s.JSDomain)
			require.True(t, s.TLSFirst)
		}},
		{name: "the daemon ignores the selected context", selected: "dev", mode: ExplicitContextOnly, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "", s.Context)
			require.False(t, s.External())
		}},
		{name: "NATS_CONTEXT over the selected one", selected: "dev", env: map[string]string{"NATS_CONTEXT": "prod"}, mode: ExplicitContextOnly, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "prod", s.Context)
			require.Equal(t, "nats://prod:4222", s.URL)
			require.True(t, strings.HasSuffix(s.Creds, "/prod.creds") && !strings.HasPrefix(s.Creds, "~"), s.Creds)
		}},
		{name: "--context over NATS_CONTEXT", args: []string{"--context", "dev"}, env: map[string]string{"NATS_CONTEXT": "prod"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "dev", s.Context)
		}},
		{name: "env over context", selected: "dev", env: map[string]string{"NATS_URL": "nats://env:1", "NATS_INBOX_PREFIX": "_ENV", "NATS_JS_DOMAIN": "leaf"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "nats://env:1", s.URL)
			require.Equal(t, FromEnv, s.URLSource)
			require.Equal(t, "_ENV", s.InboxPrefix)
			require.Equal(t, "leaf", s.JSDomain)
			require.Equal(t, "ctxuser", s.User, "credentials still from the context")
		}},
		{name: "flag over env", args: []string{"-s", "nats://flag:1", "--js-domain", "f", "--tlsfirst=false"}, selected: "dev", env: map[string]string{"NATS_URL": "nats://env:1", "NATS_JS_DOMAIN": "e"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "nats://flag:1", s.URL)
			require.Equal(t, FromFlag, s.URLSource)
			require.Equal(t, "f", s.JSDomain)
			require.False(t, s.TLSFirst)
		}},
		{name: "--nats is --server", args: []string{"--nats", "nats://a:1,nats://b:2"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "nats://a:1,nats://b:2", s.URL)
			require.True(t, s.External())
		}},
		{name: "credentials come as a group: a flag's creds beat the context's password", selected: "dev", args: []string{"--creds", "/x.creds"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "creds", s.AuthMethod())
			require.Empty(t, s.User)
			require.Empty(t, s.Password)
		}},
		{name: "env credentials beat the context's", selected: "dev", env: map[string]string{"NATS_USER": "envuser", "NATS_PASSWORD": "envpw"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "envuser", s.User)
			require.Equal(t, "envpw", s.Password)
		}},
		{name: "flag credentials beat env ones", args: []string{"--nkey", "/u.nk"}, env: map[string]string{"NATS_USER": "envuser", "NATS_PASSWORD": "envpw"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "nkey", s.AuthMethod())
			require.Empty(t, s.User)
		}},
		{name: "a user without a password is a token", args: []string{"--user", "s3cr3t-token"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "token", s.AuthMethod())
			require.Equal(t, "s3cr3t-token", s.Token)
			require.Empty(t, s.User)
		}},
		{name: "old spellings", args: []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"}, check: func(t *testing.T, s *Settings) {
			require.Equal(t, "c.pem", s.TLSCert)
			require.Equal(t, "k.pem", s.TLSKey)
			require.Equal(t, "ca.pem", s.TLSCA)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := configHome(t, ctx, tt.selected, tt.env)
			s, err := parse(t, tt.args...).Resolve(getenv, tt.mode)
			require.NoError(t, err)
			tt.check(t, s)
		})
	}
}

func TestResolveMistakes(t *testing.T) {
	t.Parallel()
	ctx := map[string]string{
		"nsc":    savedContext(map[string]string{"nsc": "nsc://op/acc/user"}),
		"broken": `{"url": "nats://x:1", "password": "hunter2", `,
		"both":   savedContext(map[string]string{"user": "u", "password": "hunter2", "creds": "/c.creds"}),
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		selected string
		msg      string
	}{
		{"empty server", []string{"--server="}, nil, "", "--server: empty URL"},
		{"missing context", []string{"--context", "nope"}, nil, "", `context "nope": no such context`},
		{"missing selected context", nil, nil, "gone", `context "gone": no such context`},
		{"context name with a path", []string{"--context", "../etc/passwd"}, nil, "", "not a context name"},
		{"nsc lookup", []string{"--context", "nsc"}, nil, "", "nsc lookups"},
		{"bad JSON", []string{"--context", "broken"}, nil, "", "bad JSON"},
		{"two ways in a context", []string{"--context", "both"}, nil, "", "give one way to authenticate, not user and password and creds (in the context both)"},
		{"two ways in flags", []string{"--creds", "a", "--nkey", "b"}, nil, "", "not creds and nkey (in the flags)"},
		{"password alone", []string{"--password", "hunter2"}, nil, "", "a password without a user"},
		{"cert without key", []string{"--tlscert", "c.pem"}, nil, "", "--tlscert and --tlskey go together"},
		{"env password alone", nil, map[string]string{"NATS_PASSWORD": "hunter2"}, "", "a password without a user (in the environment variables)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := configHome(t, ctx, tt.selected, tt.env)
			_, err := parse(t, tt.args...).Resolve(getenv, UseSelectedContext)
			require.ErrorIs(t, err, ErrUsage)
			require.ErrorContains(t, err, tt.msg)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestContextFile(t *testing.T) {
	t.Parallel()
	getenv := configHome(t, nil, "", nil)
	path := filepath.Join(t.TempDir(), "ci.json")
	require.NoError(t, os.WriteFile(path, []byte(savedContext(map[string]string{"url": "nats://file:1", "token": "tok"})), 0o600))
	s, err := parse(t, "--context", path).Resolve(getenv, UseSelectedContext)
	require.NoError(t, err)
	require.Equal(t, "ci", s.Context)
	require.Equal(t, "nats://file:1", s.URL)
	require.Equal(t, "token", s.AuthMethod())
}

func TestOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	seedFile := filepath.Join(dir, "user.nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))

	getenv := configHome(t, map[string]string{
		// `nats context save --nkey FILE --embed` inlines the seed.
		"embedded": savedContext(map[string]string{"nkey": "data:;base64," + b64(seed)}),
		"envpw":    savedContext(map[string]string{"user": "u", "password": "env://MY_PW"}),
	}, "", map[string]string{"MY_PW": "from-env"})
	for _, args := range [][]string{
		{"--nkey", seedFile},
		{"--context", "embedded"},
		{"--context", "envpw"},
		{"--user", "u", "--password", "p", "--inbox-prefix", "_I.me", "--tlsfirst"},
		{"--token", "t"},
	} {
		s, err := parse(t, args...).Resolve(getenv, UseSelectedContext)
		require.NoError(t, err, "%v", args)
		opts, err := s.Options()
		require.NoError(t, err, "%v", args)
		require.NotEmpty(t, opts, "%v", args)
	}

	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--nkey", filepath.Join(dir, "none.nk")}, "--nkey: open " + filepath.Join(dir, "none.nk")},
		{[]string{"--creds", filepath.Join(dir, "none.creds")}, "--creds: open"},
		{[]string{"--nkey", filepath.Join(dir, "../"+filepath.Base(dir)+"/user.nk.bad")}, "--nkey: open"},
		{[]string{"--tlscert", filepath.Join(dir, "c.pem"), "--tlskey", filepath.Join(dir, "k.pem")}, "--tlscert: open"},
	} {
		s, err := parse(t, tt.args...).Resolve(getenv, UseSelectedContext)
		require.NoError(t, err)
		_, err = s.Options()
		require.ErrorIs(t, err, ErrUsage)
		require.ErrorContains(t, err, tt.msg)
	}

	// A seed file holding something else: the error never quotes it.
	bad := filepath.Join(dir, "bad.nk")
	require.NoError(t, os.WriteFile(bad, []byte("hunter2"), 0o600))
	s, err := parse(t, "--nkey", bad).Resolve(getenv, UseSelectedContext)
	require.NoError(t, err)
	_, err = s.Options()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestStringHidesSecrets(t *testing.T) {
	t.Parallel()
	s, err := parse(t, "-s", "nats://u:hunter2@h:1", "--user", "u", "--password", "hunter2").Resolve(func(string) string { return "" }, UseSelectedContext)
	require.NoError(t, err)
	require.NotContains(t, s.String(), "hunter2")
	require.Contains(t, s.String(), "auth=user")
}

func TestRedactURLs(t *testing.T) {
	t.Parallel()
	require.Equal(t, "nats://alice:xxxxx@h:4222,nats://h2:4222,nats://xxxxx@h3:1",
		RedactURLs("nats://alice:secret@h:4222, nats://h2:4222,nats://tok@h3:1"))
}

func TestUsageIsErrUsage(t *testing.T) {
	t.Parallel()
	require.True(t, errors.Is(usagef("x"), ErrUsage))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
