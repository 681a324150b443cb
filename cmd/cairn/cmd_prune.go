package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/internal/units"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/prune"
)

// pruneOptions are restic's prune flags; forget --prune takes the limited
// ones (all but --dry-run and --unsafe-recover-no-free-space).
type pruneOptions struct {
	dryRun         bool
	unsafeRecovery string

	maxUnused, maxRepackSize, repackSmallerThan          string
	repackCacheableOnly, repackSmall, repackUncompressed bool
}

func newPruneCommand(a *app) *cobra.Command {
	var opts pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove unneeded data from the repository",
		Long: `
The "prune" command checks the repository and removes data that is not
referenced and therefore not needed any more.

cairn decides what to repack and what to delete by restic 0.19's rules, and
changes the repository in the same safe order: used blobs are copied out of
packs to repack first, then a new index replaces the old one, and only then
are packs deleted. A repository that does not allow deleting files (an
append-only rest-server) is refused before anything changes.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		Args:              cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runPrune(c.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	opts.addLimitedFlags(f)
	f.BoolVarP(&opts.dryRun, "dry-run", "n", false, "do not modify the repository, just print what would be done")
	f.StringVar(&opts.unsafeRecovery, "unsafe-recover-no-free-space", "", "UNSAFE, READ THE DOCUMENTATION BEFORE USING! Try to recover a repository stuck with no free space. Do not use without trying out 'prune --max-repack-size 0' first. (not supported by cairn)")
	f.SortFlags = false
	return cmd
}

func (o *pruneOptions) addLimitedFlags(f *pflag.FlagSet) {
	f.StringVar(&o.maxUnused, "max-unused", "5%", "tolerate given `limit` of unused data (absolute value in bytes with suffixes k/K, m/M, g/G, t/T, a value in % or the word 'unlimited')")
	f.StringVar(&o.maxRepackSize, "max-repack-size", "", "stop after repacking this much data in total (allowed suffixes for `size`: k/K, m/M, g/G, t/T)")
	f.BoolVar(&o.repackCacheableOnly, "repack-cacheable-only", false, "only repack packs which are cacheable")
	f.BoolVar(&o.repackSmall, "repack-small", false, "deprecated. Use --repack-smaller-than to specify a minimum size")
	_ = f.MarkDeprecated("repack-small", "small files are automatically repacked. Use --repack-smaller-than to specify a minimum size")
	f.BoolVar(&o.repackUncompressed, "repack-uncompressed", false, "repack all uncompressed data")
	f.StringVar(&o.repackSmallerThan, "repack-smaller-than", "", "pack `below-limit` packfiles (allowed suffixes: m/M)")
}

// libOptions checks the flags as restic's verifyPruneOptions does.
func (o pruneOptions) libOptions(a *app) (prune.Options, error) {
	var out prune.Options
	out.DryRun = o.dryRun
	if o.maxRepackSize != "" {
		n, err := units.ParseBytes(o.maxRepackSize)
		if err != nil {
			return out, fmt.Errorf("invalid --max-repack-size %q: %w", o.maxRepackSize, err)
		}
		out.MaxRepackBytes, out.LimitRepack = uint64(n), true
	}
	mu, err := prune.ParseMaxUnused(o.maxUnused)
	if err != nil {
		return out, err
	}
	out.MaxUnused = mu
	if o.repackSmallerThan != "" {
		n, err := units.ParseBytes(o.repackSmallerThan)
		if err != nil {
			return out, fmt.Errorf("invalid number of bytes %q for --repack-smaller-than: %v", o.repackSmallerThan, err)
		}
		if n <= 0 {
			return out, errors.New("--repack-smaller-than must be larger than zero")
		}
		out.SmallPackBytes = uint64(n)
	}
	out.RepackCacheableOnly = o.repackCacheableOnly
	out.RepackUncompressed = o.repackUncompressed
	if o.repackUncompressed && a.gopts.compression == repo.CompressionOff {
		return out, errors.New("disabled compression and `--repack-uncompressed` are mutually exclusive")
	}
	return out, nil
}

func runPrune(ctx context.Context, a *app, opts pruneOptions) error {
	popts, err := opts.libOptions(a)
	if err != nil {
		return err
	}
	if opts.unsafeRecovery != "" {
		// restic deletes every index file and rebuilds it after deleting
		// packs; cairn does not offer that last resort.
		return errors.New("--unsafe-recover-no-free-space is not supported by cairn: try `cairn prune --max-repack-size 0`, or use restic")
	}
	if a.gopts.NoLock && !opts.dryRun {
		return errors.New("--no-lock is only applicable in combination with --dry-run for prune command")
	}
	ctx, r, done, err := a.openLocked(ctx, true, opts.dryRun)
	if err != nil {
		return err
	}
	defer done()
	// restic's prune prints text even with --json.
	return runPruneWithRepo(ctx, r, popts, nil, newPrinter(a.term, a.gopts.verbosity, false))
}

// runPruneWithRepo plans and executes a prune on an open, exclusively
// locked repository; forget --prune calls it with the snapshots it removed
// (or, in a dry run, would remove) as ignore, and its own printer.
func runPruneWithRepo(ctx context.Context, r *repo.Repository, popts prune.Options, ignore map[blob.ID]struct{}, p *printer) error {
	if r.Options().CacheDir == "" {
		p.P("warning: running prune without a cache, this may be very slow!")
	}
	// Without GOMEMLIMIT, a soft limit sized from the index keeps prune's
	// peak memory near its live heap (see prune.MemoryLimit): estimated
	// from the index files while they load, then from the index.
	setLimit := func() {}
	if prev := debug.SetMemoryLimit(-1); prev == math.MaxInt64 {
		setLimit = func() {
			if limit, err := prune.MemoryLimit(ctx, r); err == nil {
				debug.SetMemoryLimit(limit)
			}
		}
		defer debug.SetMemoryLimit(prev)
	}
	setLimit()
	if err := r.EnsureIndex(ctx, nil); err != nil {
		return err
	}
	setLimit()
	popts.Printer = p
	popts.IgnoreSnapshots = ignore
	plan, err := prune.NewPlan(ctx, r, popts)
	if err != nil {
		return err
	}
	if popts.DryRun {
		p.P("\nWould have made the following changes:")
	}
	printPruneStats(p, plan.Stats())
	return plan.Execute(ctx)
}

// printPruneStats prints the statistics in restic's layout.
func printPruneStats(p *printer, s prune.Stats) {
	p.V("\nused:         %10d blobs / %s", s.Blobs.Used, formatBytes(s.Size.Used))
	if s.Blobs.Duplicate > 0 {
		p.V("duplicates:   %10d blobs / %s", s.Blobs.Duplicate, formatBytes(s.Size.Duplicate))
	}
	p.V("unused:       %10d blobs / %s", s.Blobs.Unused, formatBytes(s.Size.Unused))
	if s.Size.Unref > 0 {
		p.V("unreferenced:                    %s", formatBytes(s.Size.Unref))
	}
	totalBlobs := s.Blobs.Used + s.Blobs.Unused + s.Blobs.Duplicate
	totalSize := s.Size.Used + s.Size.Duplicate + s.Size.Unused + s.Size.Unref
	unusedSize := s.Size.Duplicate + s.Size.Unused
	p.V("total:        %10d blobs / %s", totalBlobs, formatBytes(totalSize))
	p.V("unused size: %s of total size", formatPercent(unusedSize, totalSize))

	pruneBlobs := s.Blobs.Remove + s.Blobs.Repackrm
	pruneSize := s.Size.Remove + s.Size.Repackrm + s.Size.Unref
	p.P("\nto repack:    %10d blobs / %s", s.Blobs.Repack, formatBytes(s.Size.Repack))
	p.P("this removes: %10d blobs / %s", s.Blobs.Repackrm, formatBytes(s.Size.Repackrm))
	p.P("to delete:    %10d blobs / %s", s.Blobs.Remove, formatBytes(s.Size.Remove+s.Size.Unref))
	p.P("total prune:  %10d blobs / %s", pruneBlobs, formatBytes(pruneSize))
	if s.Size.Uncompressed > 0 {
		p.P("not yet compressed:              %s", formatBytes(s.Size.Uncompressed))
	}
	p.P("remaining:    %10d blobs / %s", totalBlobs-pruneBlobs, formatBytes(totalSize-pruneSize))
	unusedAfter := unusedSize - s.Size.Remove - s.Size.Repackrm
	p.P("unused size after prune: %s (%s of remaining size)", formatBytes(unusedAfter), formatPercent(unusedAfter, totalSize-pruneSize))
	p.P("")
	p.V("totally used packs: %10d", s.Packs.Used)
	p.V("partly used packs:  %10d", s.Packs.PartlyUsed)
	p.V("unused packs:       %10d\n\n", s.Packs.Unused)
	p.V("to keep:      %10d packs", s.Packs.Keep)
	p.V("to repack:    %10d packs", s.Packs.Repack)
	p.V("to delete:    %10d packs", s.Packs.Remove)
	if s.Packs.Unref > 0 {
		p.V("to delete:    %10d unreferenced packs\n\n", s.Packs.Unref)
	}
}
