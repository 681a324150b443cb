package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/repair"
)

func newRepairCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Repair the repository",
		Long: `
The "repair" command repairs damaged repositories: "repair index" rebuilds the
index from the pack files, "repair snapshots" rewrites snapshots that refer to
missing data.
`,
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newRepairIndexCommand(a), newRepairSnapshotsCommand(a))
	return cmd
}

func newRepairIndexCommand(a *app) *cobra.Command {
	var readAll bool
	cmd := &cobra.Command{
		Use:   "index [flags]",
		Short: "Build a new index",
		Long: `
The "repair index" command creates a new index from the pack files in the
repository: index files that cannot be read are dropped, packs that no index
lists (or whose size does not match their entries) have their headers read,
and entries of packs that no longer exist are removed. The new index files are
written before the old ones are deleted.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		Args:              cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runRepairIndex(c.Context(), a, readAll)
		},
	}
	cmd.Flags().BoolVar(&readAll, "read-all-packs", false, "read all pack files to generate new index from scratch")
	return cmd
}

func runRepairIndex(ctx context.Context, a *app, readAll bool) error {
	p := a.printer()
	ctx, r, done, err := a.openLocked(ctx, true, false)
	if err != nil {
		return err
	}
	defer done()
	if _, err := repair.Index(ctx, r, repair.IndexOptions{ReadAllPacks: readAll}, p); err != nil {
		return err
	}
	p.P("done")
	return nil
}

type repairSnapshotsOptions struct {
	dryRun, forget bool
	filter         snapshotFilterFlags
}

func newRepairSnapshotsCommand(a *app) *cobra.Command {
	var opts repairSnapshotsOptions
	cmd := &cobra.Command{
		Use:   "snapshots [flags] [snapshot ID] [...]",
		Short: "Repair snapshots",
		Long: `
The "repair snapshots" command repairs broken snapshots: it writes a new
snapshot for each one whose trees refer to missing data, with the damaged
directories emptied and the missing parts cut out of damaged files. The new
snapshot is tagged "repaired" and records the original's ID; with --forget
the original is removed instead. Once the broken snapshots are gone, prune
can clean up the repository.

It depends on a correct index: run "repair index" first.

WARNING
=======

Repairing snapshots loses data: broken directories and the broken parts of
files are gone from the new snapshots. If the files still exist, a new backup
is the better repair; use this command for old snapshots that cannot be made
again.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runRepairSnapshots(c.Context(), a, opts, args)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.dryRun, "dry-run", "n", false, "do not do anything, just print what would be done")
	f.BoolVar(&opts.forget, "forget", false, "remove original snapshots after creating new ones")
	opts.filter.add(f, false)
	return cmd
}

func runRepairSnapshots(ctx context.Context, a *app, opts repairSnapshotsOptions, args []string) error {
	p := a.printer()
	var r *repo.Repository
	if opts.dryRun {
		// Like restic: a dry run writes nothing, so it takes no lock.
		var err error
		if r, err = a.openRepository(ctx, a.mainRepo()); err != nil {
			return err
		}
		defer r.Close()
	} else {
		lctx, lr, done, err := a.openLocked(ctx, true, false)
		if err != nil {
			return err
		}
		defer done()
		ctx, r = lctx, lr
	}
	if err := r.LoadIndex(ctx, nil); err != nil {
		return err
	}
	list, err := selectSnapshots(ctx, r, &opts.filter, args, p)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		// restic goes in listing order; oldest first is the same set,
		// and reproducible.
		repo.SortSnapshots(list)
	}
	results, err := repair.Snapshots(ctx, r, list, repair.SnapshotsOptions{DryRun: opts.dryRun, Forget: opts.forget}, p)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	changed := 0
	for _, res := range results {
		if res.Changed {
			changed++
		}
	}
	p.P("")
	switch {
	case changed == 0 && !opts.dryRun:
		p.P("no snapshots were modified")
	case changed == 0:
		p.P("no snapshots would be modified")
	case !opts.dryRun:
		p.P("modified %v snapshots", changed)
	default:
		p.P("would modify %v snapshots", changed)
	}
	return nil
}
