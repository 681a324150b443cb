package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
)

// migration is one of restic's named repository migrations.
type migration struct {
	name, desc string
	// check reports whether the migration applies, and why not.
	check func(r *repo.Repository) (ok bool, reason string)
	// repoCheck asks for a clean `check` before the migration is applied.
	repoCheck bool
	apply     func(ctx context.Context, r *repo.Repository) error
}

// migrations are the migrations cairn knows: restic 0.19.1 has only this
// one.
var migrations = []migration{{
	name: "upgrade_repo_v2",
	desc: "upgrade a repository to version 2",
	check: func(r *repo.Repository) (bool, string) {
		if v := r.Config().Version; v != 1 {
			return false, fmt.Sprintf("repository is already upgraded to version %v", v)
		}
		return true, ""
	},
	repoCheck: true,
	apply: func(ctx context.Context, r *repo.Repository) error {
		return r.UpgradeV2(ctx)
	},
}}

func newMigrateCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "migrate [flags] [migration name] [...]",
		Short: "Apply migrations",
		Long: `
The "migrate" command lists the migrations that can be applied to a
repository. Given one or more migration names, it applies them.

upgrade_repo_v2 turns a version 1 repository into version 2, which allows
compression: the repository is checked first (like "check" without
--read-data), the config is saved to a temporary directory, and a config
with version 2 is written. Data already stored stays as it is.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runMigrate(c.Context(), a, force, args)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "apply a migration a second time")
	return cmd
}

func runMigrate(ctx context.Context, a *app, force bool, args []string) error {
	// restic prints this command's messages as text even with --json.
	p := newPrinter(a.term, a.gopts.verbosity, false)
	if len(args) > 0 {
		// A migration checks the repository through this handle (see
		// checkLocked), and check reads the repository itself, not the
		// local cache, as a plain `check` does. Listing or applying a
		// migration needs no cache.
		a.gopts.NoCache = true
	}
	// Exclusive: nothing may write while the config changes.
	ctx, r, done, err := a.openLocked(ctx, true, false)
	if err != nil {
		return err
	}
	defer done()

	if len(args) == 0 {
		p.P("available migrations:\n")
		found := false
		for _, m := range migrations {
			if ok, _ := m.check(r); ok {
				p.P("  %v\t%v\n", m.name, m.desc)
				found = true
			}
		}
		if !found {
			p.P("no migrations found\n")
		}
		return nil
	}

	// Like restic, an unknown or inapplicable migration is reported and
	// skipped; only a failed migration makes the command fail.
	var firstErr error
	for _, name := range args {
		found := false
		for _, m := range migrations {
			if m.name != name {
				continue
			}
			found = true
			ok, reason := m.check(r)
			if !ok {
				if !force {
					if reason == "" {
						reason = "check failed"
					}
					p.E("migration %v cannot be applied: %v\nIf you want to apply this migration anyway, re-run with option --force\n", m.name, reason)
					continue
				}
				p.E("check for migration %v failed, continuing anyway\n", m.name)
			}
			if m.repoCheck {
				p.P("checking repository integrity...\n")
				if err := a.checkLocked(ctx, r); err != nil {
					return err
				}
			}
			p.P("applying migration %v...\n", m.name)
			if err := m.apply(ctx, r); err != nil {
				p.E("migration %v failed: %v\n", m.name, err)
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			p.P("migration %v: success\n", m.name)
		}
		if !found {
			p.E("unknown migration %v", name)
		}
	}
	return firstErr
}

// checkLocked runs `check` (without --read-data) on r, the main
// repository, which this process holds an exclusive lock on already. It
// uses the open handle: opening the repository again would derive the key
// a second time and, without a password in the environment, prompt for it
// again.
func (a *app) checkLocked(ctx context.Context, r *repo.Repository) error {
	return runCheckWithRepo(ctx, a, r, checkOptions{})
}
