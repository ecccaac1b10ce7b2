package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what `natsched version` reports, from the Go build
// information: the module version (a tag for `go install …@v1.2.3`,
// "(devel)" for a build from a work tree) and the VCS stamp when the build
// had one.
type buildInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// readBuildInfo is debug.ReadBuildInfo, replaceable in tests.
var readBuildInfo = debug.ReadBuildInfo

func currentBuild() buildInfo {
	b := buildInfo{Module: "github.com/natsched/natsched", Version: "(unknown)", Go: runtime.Version()}
	bi, ok := readBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Path != "" {
		b.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func versionCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "print the module version and VCS revision this binary was built from",
		Long: `Prints the module version and, when the build recorded them, the VCS
revision, its time and whether the work tree had uncommitted changes
(from the Go build information).`,
		Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			b := currentBuild()
			if asJSON {
				out, err := json.Marshal(b)
				if err != nil {
					return err
				}
				return writeRaw(e.stdout, out)
			}
			rev := b.Revision
			switch {
			case rev == "":
				rev = "unknown (built without VCS information)"
			case b.Modified:
				rev += " (modified)"
			}
			fmt.Fprintf(e.stdout, "natsched %s\nmodule:   %s\nrevision: %s\n", b.Version, b.Module, rev)
			if b.Time != "" {
				fmt.Fprintf(e.stdout, "time:     %s\n", b.Time)
			}
			fmt.Fprintf(e.stdout, "go:       %s\n", b.Go)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
