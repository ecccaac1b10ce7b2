package main

// Secured NATS: the daemon on an embedded server whose --config requires
// authentication, and on an operator-mode server with creds; the client
// commands with every way the nats CLI has to authenticate.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/natschedtest"
)

// Secrets of the tests: none may appear in any output.
const (
	schedPassword = "sched-pw-7Hq2xV"
	alicePassword = "alice-pw-Zr81Kc"
	secretToken   = "token-Mv03LpQe"
)

// transcript collects every output of a test, to check for secrets.
type transcript struct{ strings.Builder }

func (tr *transcript) run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	code, out, errOut := runBinEnv(t, env, args...)
	// The command line holds the secrets the test gives; the outputs may not.
	fmt.Fprintf(tr, "$ natsched %s\n%s%s", args[0], out, errOut)
	return code, out, errOut
}

func (tr *transcript) ok(t *testing.T, env []string, args ...string) string {
	t.Helper()
	code, out, errOut := tr.run(t, env, args...)
	require.Equal(t, 0, code, "natsched %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	return out
}

func (tr *transcript) noSecrets(t *testing.T, extra ...string) {
	t.Helper()
	for _, s := range append([]string{schedPassword, alicePassword, secretToken}, extra...) {
		require.NotContains(t, tr.String(), s, "a secret in the output")
	}
}

// savedContext is a context file as `nats context save` (natscli v0.5.0)
// writes it.
func savedContext(url, user, password, token, nkey, creds string) string {
	b, _ := json.MarshalIndent(map[string]any{
		"description": "", "url": url, "socks_proxy": "", "token": token, "user": user, "password": password,
		"creds": creds, "nkey": nkey, "cert": "", "key": "", "ca": "", "nsc": "", "jetstream_domain": "",
		"jetstream_api_prefix": "", "jetstream_event_prefix": "", "inbox_prefix": "", "user_jwt": "", "user_seed": "",
		"color_scheme": "", "tls_first": false, "windows_cert_store": "", "windows_cert_match_by": "",
		"windows_cert_match": "", "windows_ca_certs_match": nil,
	}, "", "  ")
	return string(b)
}

// writeContexts writes contexts (name → JSON) under a fresh config home,
// selects selected if not empty, and returns HOME/XDG_CONFIG_HOME for it.
func writeContexts(t *testing.T, contexts map[string]string, selected string) []string {
	t.Helper()
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "nats", "context")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	for name, body := range contexts {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o600))
	}
	if selected != "" {
		require.NoError(t, os.WriteFile(filepath.Join(home, ".config", "nats", "context.txt"), []byte(selected), 0o600))
	}
	// Without XDG_CONFIG_HOME, as on most machines: ~/.config/nats.
	return []string{"HOME=" + home, "XDG_CONFIG_HOME="}
}

var monitorLine = regexp.MustCompile(`monitor=(http://\S+)`)

// TestEmbeddedServerWithAuth: natsched server --config with users and an
// nkey; the daemon connects with its own user, serves and fires; client
// commands get in with each way to authenticate and not without.
func TestEmbeddedServerWithAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ukp, err := nkeys.CreateUser()
	require.NoError(t, err)
	upub, err := ukp.PublicKey()
	require.NoError(t, err)
	seed, err := ukp.Seed()
	require.NoError(t, err)
	seedFile := filepath.Join(dir, "bob.nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))

	store := filepath.Join(dir, "store-from-config")
	config := filepath.Join(dir, "auth.conf")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(`
# listen and store_dir here win over natsched's defaults; --listen below wins over the file
listen: 127.0.0.1:4999
jetstream { store_dir: %q }
accounts {
  APP {
    jetstream: enabled
    users: [
      { user: sched, password: %q }
      { user: alice, password: %q }
      { nkey: %s }
    ]
  }
}
`, store, schedPassword, alicePassword, upub)), 0o600))

	var tr transcript
	d := startServer(t, "--config", config, "--listen", "127.0.0.1:0", "--monitor", "127.0.0.1:0",
		"--name", "auth-1", "--user", "sched", "--password", schedPassword, "--lease", "1s")
	s := d.url
	fmt.Fprint(&tr, d.logs.String())
	_, err = os.Stat(filepath.Join(store, "natsched.lock"))
	require.NoError(t, err, "the store comes from the config file, and is locked")

	// The daemon's connection is named after its instance, in its own
	// account: the monitoring port says so.
	m := monitorLine.FindStringSubmatch(d.logs.String())
	require.NotNil(t, m, "ready line with monitor=: %s", d.logs.String())
	resp, err := http.Get(m[1] + "/connz?auth=true")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), `"name": "natsched auth-1"`)
	require.Contains(t, string(body), `"authorized_user": "sched"`)

	alice := []string{"--user", "alice", "--password", alicePassword}
	t.Run("user and password flags; the daemon fires", func(t *testing.T) {
		nc, err := nats.Connect(s, nats.UserInfo("alice", alicePassword))
		require.NoError(t, err)
		defer nc.Close()
		fired := make(chan *nats.Msg, 1)
		_, err = nc.ChanSubscribe("natsched.fire.auth", fired)
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
		tr.ok(t, nil, append([]string{"add", "auth.in", "--subject", "natsched.fire.auth", "--in", "500ms", "--data", "hi", "-s", s}, alice...)...)
		m := receive(t, fired, "fire with auth")
		require.Equal(t, "hi", string(m.Data))
		require.Equal(t, "auth.in", m.Header.Get("Natsched-Id"))
	})

	t.Run("environment variables", func(t *testing.T) {
		out := tr.ok(t, []string{"NATS_URL=" + s, "NATS_USER=alice", "NATS_PASSWORD=" + alicePassword}, "status")
		require.Regexp(t, `instance:\s+auth-1`, out)
	})

	t.Run("nkey seed file", func(t *testing.T) {
		tr.ok(t, nil, "get", "auth.in", "-s", s, "--nkey", seedFile)
		tr.ok(t, []string{"NATS_NKEY=" + seedFile}, "ls", "-s", s)
	})

	t.Run("context file, NATS_CONTEXT and the selected context", func(t *testing.T) {
		home := writeContexts(t, map[string]string{
			"alice": savedContext(s, "alice", alicePassword, "", "", ""),
			"bob":   savedContext(s, "", "", "", seedFile, ""),
		}, "bob")
		tr.ok(t, home, "status", "--context", "alice")
		tr.ok(t, append(home, "NATS_CONTEXT=alice"), "get", "auth.in")
		tr.ok(t, home, "ls") // the selected one, bob's nkey
		// A flag beats the context: the URL, and the credentials as a group.
		code, _, errOut := tr.run(t, home, "status", "--context", "alice", "--user", "alice", "--password", "wrong-pw")
		require.Equal(t, 1, code)
		require.Contains(t, strings.ToLower(errOut), "authorization violation")
	})

	t.Run("without credentials", func(t *testing.T) {
		code, out, errOut := tr.run(t, nil, "status", "-s", s)
		require.Equal(t, 1, code, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, "natsched status: cannot connect to "+s)
		require.Contains(t, strings.ToLower(errOut), "authorization violation")
		require.Contains(t, errOut, "credentials: none")
		code, _, errOut = tr.run(t, nil, "ls", "-s", s, "--user", "alice", "--password", "not-"+alicePassword)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "credentials: user")
	})

	t.Run("the daemon without its credentials", func(t *testing.T) {
		code, out, errOut := tr.run(t, nil, "server", "--config", config, "--listen", "127.0.0.1:0", "--store", t.TempDir())
		require.Equal(t, 2, code, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, "requires authentication, and natsched server connects to it as a client")
		code, out, errOut = tr.run(t, nil, "server", "--config", config, "--listen", "127.0.0.1:0", "--store", t.TempDir(),
			"--user", "sched", "--password", "not-"+schedPassword)
		require.Equal(t, 1, code, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, "connect to the embedded server")
		require.Contains(t, errOut, "refused natsched's credentials: user")
	})

	d.stop(t, syscall.SIGTERM)
	fmt.Fprint(&tr, d.logs.String())
	tr.noSecrets(t, string(seed))
}

// TestTokenAndNonLoopback: a config with a token; --listen on every
// interface is refused without authorization (nothing is bound: the
// refusal comes first).
func TestTokenAndNonLoopback(t *testing.T) {
	t.Parallel()
	var tr transcript
	open := filepath.Join(t.TempDir(), "open.conf")
	require.NoError(t, os.WriteFile(open, []byte("jetstream: enabled\n"), 0o600))
	for _, args := range [][]string{
		{"server", "--listen", "0.0.0.0:4222", "--store", t.TempDir()},
		{"server", "--listen", "[::]:4222", "--store", t.TempDir()},
		{"server", "--config", open, "--listen", "0.0.0.0:4222", "--store", t.TempDir()},
	} {
		code, out, errOut := tr.run(t, nil, args...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, "is not a loopback address and the embedded server has no authorization")
	}

	config := filepath.Join(t.TempDir(), "token.conf")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf("authorization { token: %q }\n", secretToken)), 0o600))
	d := startServer(t, "--config", config, "--listen", "127.0.0.1:0", "--store", t.TempDir(), "--token", secretToken, "--name", "tok")
	tr.ok(t, nil, "status", "-s", d.url, "--token", secretToken)
	// natscli's rule: a user without a password is a token.
	tr.ok(t, []string{"NATS_USER=" + secretToken}, "status", "-s", d.url)
	code, _, errOut := tr.run(t, nil, "status", "-s", d.url)
	require.Equal(t, 1, code)
	require.Contains(t, strings.ToLower(errOut), "authorization violation")
	d.stop(t, syscall.SIGTERM)
	fmt.Fprint(&tr, d.logs.String())
	tr.noSecrets(t)
}

// operatorServer runs a server in operator mode (JWT auth) with account
// APP, and returns creds files for two of its users.
func operatorServer(t *testing.T) (srv *natschedtest.Server, schedCreds, aliceCreds string, secrets []string) {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opub, err := okp.PublicKey()
	require.NoError(t, err)
	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		tok, err := ac.Encode(okp)
		require.NoError(t, err)
		return kp, pub, tok
	}
	_, sysPub, sysJWT := account("SYS", false)
	appKP, appPub, appJWT := account("APP", true)
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "OP"
	oc.SystemAccount = sysPub
	otok, err := oc.Encode(okp)
	require.NoError(t, err)
	claims, err := jwt.DecodeOperatorClaims(otok)
	require.NoError(t, err)

	dir := t.TempDir()
	user := func(name string) string {
		kp, err := nkeys.CreateUser()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		seed, err := kp.Seed()
		require.NoError(t, err)
		uc := jwt.NewUserClaims(pub)
		uc.Name = name
		tok, err := uc.Encode(appKP)
		require.NoError(t, err)
		creds, err := jwt.FormatUserConfig(tok, seed)
		require.NoError(t, err)
		path := filepath.Join(dir, name+".creds")
		require.NoError(t, os.WriteFile(path, creds, 0o600))
		secrets = append(secrets, string(seed))
		return path
	}
	srv = natschedtest.RunServer(t, natschedtest.WithConfig(func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{claims}
		o.SystemAccount = sysPub
		r := &server.MemAccResolver{}
		require.NoError(t, r.Store(sysPub, sysJWT))
		require.NoError(t, r.Store(appPub, appJWT))
		o.AccountResolver = r
	}))
	return srv, user("sched"), user("alice"), secrets
}

// TestCredsFile: an operator-mode server; the daemon joins it with its
// creds, client commands use theirs (flag, env, context).
func TestCredsFile(t *testing.T) {
	t.Parallel()
	srv, schedCreds, aliceCreds, seeds := operatorServer(t)
	var tr transcript
	d := startServer(t, "--nats", srv.URL(), "--creds", schedCreds, "--name", "creds-1", "--lease", "1s")
	out := tr.ok(t, nil, "add", "creds.job", "--subject", "natsched.fire.creds", "--every", "1h", "-s", srv.URL(), "--creds", aliceCreds)
	require.Regexp(t, `id:\s+creds\.job`, out)
	tr.ok(t, []string{"NATS_URL=" + srv.URL(), "NATS_CREDS=" + aliceCreds}, "get", "creds.job")
	home := writeContexts(t, map[string]string{"app": savedContext(srv.URL(), "", "", "", "", aliceCreds)}, "")
	out = tr.ok(t, append(home, "NATS_CONTEXT=app"), "status")
	require.Regexp(t, `instance:\s+creds-1`, out)
	code, _, errOut := tr.run(t, nil, "status", "-s", srv.URL())
	require.Equal(t, 1, code)
	require.Contains(t, strings.ToLower(errOut), "authorization violation")
	d.stop(t, syscall.SIGTERM)
	fmt.Fprint(&tr, d.logs.String())
	tr.noSecrets(t, seeds...)
}
