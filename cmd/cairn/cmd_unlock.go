package main

import (
	"github.com/spf13/cobra"
)

func newUnlockCommand(a *app) *cobra.Command {
	var removeAll bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove locks other processes created",
		Long: `
The "unlock" command removes stale locks that have been created by other
cairn or restic processes: locks not refreshed for 30 minutes, or made on
this host by a process that no longer exists (for cairn's locks: in this
PID namespace; a container that shares the host name numbers its processes
apart). With --remove-all it removes
every lock; make sure no other process uses the repository then.

EXIT STATUS
===========

Exit status is 0 if the command was successful.
Exit status is 1 if there was any error.
Exit status is 10 if the repository does not exist.
Exit status is 12 if the password is incorrect.
`,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := a.openRepository(c.Context(), a.mainRepo())
			if err != nil {
				return err
			}
			defer r.Close()
			n, err := r.RemoveLocks(c.Context(), removeAll)
			if err != nil {
				return err
			}
			if n > 0 {
				a.printer().P("successfully removed %d locks", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&removeAll, "remove-all", false, "remove all locks, even non-stale ones")
	return cmd
}
