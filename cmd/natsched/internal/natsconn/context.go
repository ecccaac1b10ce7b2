package natsconn

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// contextFile is a context as `nats context save` writes it: one JSON
// file per context in <config>/nats/context/<name>.json, where <config>
// is $XDG_CONFIG_HOME or ~/.config, and the selected context's name in
// <config>/nats/context.txt. Fields natsched has no use for
// (description, color_scheme, jetstream_event_prefix) are ignored.
type contextFile struct {
	name, path string

	URL          string `json:"url"`
	Token        string `json:"token"`
	User         string `json:"user"`
	Password     string `json:"password"`
	Creds        string `json:"creds"`
	NKey         string `json:"nkey"`
	Cert         string `json:"cert"`
	Key          string `json:"key"`
	CA           string `json:"ca"`
	NSC          string `json:"nsc"`
	JSDomain     string `json:"jetstream_domain"`
	JSAPIPrefix  string `json:"jetstream_api_prefix"`
	InboxPrefix  string `json:"inbox_prefix"`
	UserJWT      string `json:"user_jwt"`
	UserSeed     string `json:"user_seed"`
	SocksProxy   string `json:"socks_proxy"`
	TLSFirst     bool   `json:"tls_first"`
	WinCertStore string `json:"windows_cert_store"`
}

func (c *contextFile) get(f field) string {
	switch f {
	case fServer:
		return c.URL
	case fCreds:
		return c.Creds
	case fNKey:
		return c.NKey
	case fUser:
		return c.User
	case fPassword:
		return c.Password
	case fToken:
		return c.Token
	case fTLSCert:
		return c.Cert
	case fTLSKey:
		return c.Key
	case fTLSCA:
		return c.CA
	case fInboxPrefix:
		return c.InboxPrefix
	case fJSDomain:
		return c.JSDomain
	}
	return ""
}

// configDir is where the nats CLI keeps its configuration.
func configDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "nats"), nil
	}
	return "", usagef("cannot find the nats contexts: neither XDG_CONFIG_HOME nor HOME is set")
}

// selectedContext is the name in context.txt, or "" when none is
// selected (or there is no configuration at all).
func selectedContext(getenv func(string) string) (string, error) {
	if getenv("XDG_CONFIG_HOME") == "" && getenv("HOME") == "" {
		return "", nil
	}
	dir, err := configDir(getenv)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", usagef("selected context: %v", pathError(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// loadContext reads the context name: a saved context, or (as the nats
// CLI allows) the path of a context .json file.
func loadContext(getenv func(string) string, name string) (*contextFile, error) {
	var path string
	if st, err := os.Stat(name); err == nil && !st.IsDir() && strings.HasSuffix(name, ".json") {
		path = name
		name = strings.TrimSuffix(filepath.Base(name), ".json")
	} else {
		if name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
			return nil, usagef("context %q: not a context name", name)
		}
		dir, err := configDir(getenv)
		if err != nil {
			return nil, err
		}
		path = filepath.Join(dir, "context", name+".json")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("context %q: no such context (%s does not exist; see 'nats context ls')", name, path)
	}
	if err != nil {
		return nil, usagef("context %q: %v", name, pathError(err))
	}
	c := &contextFile{name: name, path: path}
	if err := json.Unmarshal(b, c); err != nil {
		// The JSON error may quote part of the file; say only where.
		return nil, usagef("context %q: %s is not a context file (bad JSON)", name, path)
	}
	switch {
	case c.NSC != "":
		return nil, usagef("context %q: nsc lookups (\"nsc\") are not supported by natsched; save the context with --creds", name)
	case c.SocksProxy != "":
		return nil, usagef("context %q: socks_proxy is not supported by natsched", name)
	case c.WinCertStore != "":
		return nil, usagef("context %q: windows_cert_store is not supported by natsched", name)
	}
	home := getenv("HOME")
	for _, p := range []*string{&c.Creds, &c.NKey, &c.Cert, &c.Key, &c.CA} {
		*p = expandPath(*p, home, getenv)
	}
	return c, nil
}

// expandPath expands $VARS and a leading ~, as the nats CLI does for the
// file fields of a context.
func expandPath(p, home string, getenv func(string) string) string {
	if p == "" || hasScheme(p) {
		return p
	}
	p = os.Expand(p, getenv)
	if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
		p = home + p[1:]
	}
	return p
}

// hasScheme reports whether ref is a credential reference such as
// data:, env:// or file:// rather than a plain path (a Windows drive
// letter is a path).
func hasScheme(ref string) bool {
	i := strings.Index(ref, ":")
	if i < 2 {
		return false
	}
	for _, r := range ref[:i] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// filePath returns the path a credential reference names: a plain path or
// file://path.
func filePath(ref string) (string, bool) {
	if !hasScheme(ref) {
		return ref, true
	}
	if strings.HasPrefix(strings.ToLower(ref), "file://") {
		return ref[len("file://"):], true
	}
	return "", false
}

// resolveBytes reads a data: or env:// reference, the forms `nats context
// save --embed` and the nats CLI's env:// support write. 1Password (op://)
// and nsc:// references need tools natsched does not run.
func resolveBytes(ref, what string, getenv func(string) string) ([]byte, error) {
	lower := strings.ToLower(ref)
	switch {
	case strings.HasPrefix(lower, "data:"):
		meta, payload, ok := strings.Cut(ref[len("data:"):], ",")
		if !ok {
			return nil, usagef("%s: malformed data: reference", what)
		}
		if strings.HasSuffix(meta, ";base64") {
			b, err := base64.StdEncoding.DecodeString(payload)
			if err != nil {
				return nil, usagef("%s: malformed base64 in data: reference", what)
			}
			return b, nil
		}
		return []byte(payload), nil
	case strings.HasPrefix(lower, "env://"):
		name := ref[len("env://"):]
		v := getenv(name)
		if v == "" {
			return nil, usagef("%s: environment variable %s is not set", what, name)
		}
		return []byte(v), nil
	case strings.HasPrefix(lower, "file://"):
		b, err := os.ReadFile(ref[len("file://"):])
		if err != nil {
			return nil, usagef("%s: %v", what, pathError(err))
		}
		return b, nil
	}
	scheme, _, _ := strings.Cut(ref, ":")
	return nil, usagef("%s: %s: references are not supported by natsched (use a file, data: or env://)", what, scheme)
}

// resolveSecret is a literal value unless it is a reference.
func resolveSecret(v, what string, getenv func(string) string) (string, error) {
	lower := strings.ToLower(v)
	if !strings.HasPrefix(lower, "data:") && !strings.HasPrefix(lower, "env://") && !strings.HasPrefix(lower, "file://") &&
		!strings.HasPrefix(lower, "op://") && !strings.HasPrefix(lower, "nsc://") {
		return v, nil
	}
	b, err := resolveBytes(v, what, getenv)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
