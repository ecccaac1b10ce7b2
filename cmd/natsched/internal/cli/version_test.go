package cli

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// Not parallel: it replaces readBuildInfo.
func TestVersionFromBuildInfo(t *testing.T) {
	old := readBuildInfo
	t.Cleanup(func() { readBuildInfo = old })
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/natsched/natsched", Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-11-27T21:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	code, out, errOut := runCLI(t, "", "version")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "natsched v1.2.3\nmodule:   github.com/natsched/natsched\nrevision: 0123abcd (modified)\ntime:     2026-11-27T21:00:00Z\ngo:       go1.26.8\n", out)
	code, out, _ = runCLI(t, "", "version", "--json")
	require.Equal(t, ExitOK, code)
	require.JSONEq(t, `{"module":"github.com/natsched/natsched","version":"v1.2.3","revision":"0123abcd","time":"2026-11-27T21:00:00Z","modified":true,"go":"go1.26.8"}`, out)

	readBuildInfo = func() (*debug.BuildInfo, bool) { return nil, false }
	_, out, _ = runCLI(t, "", "version")
	require.Contains(t, out, "revision: unknown (built without VCS information)")
}
