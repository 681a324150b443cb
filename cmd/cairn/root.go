package main

import (
	"io"
	"os"

	"github.com/spf13/cobra"
)

// version is cairn's version, recorded in snapshots as "cairn <version>".
var version = "0.1.0-dev"

// newRootCommand builds the command tree. The persistent pre-run finishes
// the global options, builds the backend registry and resolves the
// password for commands that open a repository.
func newRootCommand(a *app, stdin *os.File, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Back up and restore files in restic repositories",
		Long: `
cairn is a backup program that reads and writes restic repositories. For the
commands it shares with restic it takes the same flags and environment
variables, prints the same JSON and exits with the same codes:

  0   success
  1   fatal error (no snapshot created)
  3   backup done, but some source files could not be read
  10  the repository does not exist
  11  the repository is locked
  12  wrong password
  130 interrupted (SIGINT or SIGTERM; the lock is released and the
      repository stays valid)
`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			a.parsed = true
			if err := a.gopts.finish(c.Flags()); err != nil {
				return err
			}
			a.term = newTerminal(stdin, stdout, stderr, a.gopts.Quiet)
			if err := a.setupLogging(c.Name() == "run"); err != nil {
				return err
			}
			reg, err := newRegistry(tlsSettings{CACerts: a.gopts.CACerts, ClientCert: a.gopts.TLSClientCert}, func(f string, args ...any) {
				a.printer().E(f, args...)
			})
			if err != nil {
				return err
			}
			a.backends = reg
			if !needsPassword(c) {
				return nil
			}
			return a.resolvePassword(c.Context())
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(stdout)
	root.SetErr(stderr)
	a.gopts.addFlags(root.PersistentFlags())
	root.AddCommand(
		newInitCommand(a),
		newBackupCommand(a),
		newSnapshotsCommand(a),
		newLsCommand(a),
		newCatCommand(a),
		newRestoreCommand(a),
		newKeyCommand(a),
		newUnlockCommand(a),
		newForgetCommand(a),
		newCheckCommand(a),
		newTagCommand(a),
		newCopyCommand(a),
		newMigrateCommand(a),
		newRepairCommand(a),
		newPruneCommand(a),
		newRunCommand(a),
		newVersionCommand(a),
		newStatsCommand(a),
		newDiffCommand(a),
		newFindCommand(a),
		newDumpCommand(a),
	)
	return root
}

// needsPassword reports whether a command opens a repository, so that a
// password command is not run for `version` or `help`.
func needsPassword(c *cobra.Command) bool {
	switch c.Name() {
	case "version", "help", "cairn", "key":
		return false
	}
	return true
}
