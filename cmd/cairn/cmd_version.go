package main

import (
	"runtime"

	"github.com/spf13/cobra"
)

// versionJSON is `version --json`, shaped like restic's.
type versionJSON struct {
	MessageType string `json:"message_type"` // "version"
	Version     string `json:"version"`
	GoVersion   string `json:"go_version"`
	GoOS        string `json:"go_os"`
	GoArch      string `json:"go_arch"`
}

func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version information",
		Long: `
The "version" command prints the version of cairn and of the Go toolchain
that built it.

EXIT STATUS
===========

Exit status is 0 if the command was successful.
Exit status is 1 if there was any error.
`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, _ []string) error {
			if a.gopts.JSON {
				return a.term.printJSON(versionJSON{
					MessageType: "version", Version: version,
					GoVersion: runtime.Version(), GoOS: runtime.GOOS, GoArch: runtime.GOARCH,
				})
			}
			a.printer().S("cairn %s compiled with %v on %v/%v", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
