package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/forget"
)

type forgetOptions struct {
	policy   forget.Policy
	filter   snapshotFilterFlags
	groupBy  forget.GroupBy
	compact  bool
	dryRun   bool
	prune    bool
	allowAll bool // --unsafe-allow-remove-all

	// prune's limited flags, accepted so that restic command lines parse;
	// they only matter with --prune.
	maxUnused, maxRepackSize, repackSmallerThan          string
	repackCacheableOnly, repackSmall, repackUncompressed bool
}

func newForgetCommand(a *app) *cobra.Command {
	var opts forgetOptions
	cmd := &cobra.Command{
		Use:   "forget [flags] [snapshot ID] [...]",
		Short: "Remove snapshots from the repository",
		Long: `
The "forget" command deletes snapshots that a retention policy does not keep.
The snapshots are split into groups ("--group-by", by default host and paths)
and the "--keep-*" rules apply to each group separately. When a group holds
fewer periods than a "--keep-{within-,}*" rule asks for, its oldest snapshot
stays too. Snapshot IDs given as arguments are deleted without any policy.

cairn keeps and removes exactly the snapshots restic 0.19 would, for the same
reasons. Only snapshot files are deleted: the data they referenced stays in
the repository until it is pruned.

EXIT STATUS
===========

Exit status is 0 if the command was successful.
Exit status is 1 if there was any error.
Exit status is 3 if there was an error removing one or more snapshots.
Exit status is 10 if the repository does not exist.
Exit status is 11 if the repository is already locked.
Exit status is 12 if the password is incorrect.
`,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runForget(c.Context(), a, opts, args)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func (o *forgetOptions) addFlags(f *pflag.FlagSet) {
	p := &o.policy
	for _, c := range []struct {
		n           *int
		name, short string
		what        string
	}{
		{&p.Last, "keep-last", "l", "snapshots"},
		{&p.Hourly, "keep-hourly", "H", "hourly snapshots"},
		{&p.Daily, "keep-daily", "d", "daily snapshots"},
		{&p.Weekly, "keep-weekly", "w", "weekly snapshots"},
		{&p.Monthly, "keep-monthly", "m", "monthly snapshots"},
		{&p.Yearly, "keep-yearly", "y", "yearly snapshots"},
	} {
		f.VarP((*countFlag)(c.n), c.name, c.short, fmt.Sprintf("keep the last `n` %s (use 'unlimited' to keep all %s)", c.what, c.what))
	}
	for _, d := range []struct {
		d    *forget.Duration
		name string
		what string
	}{
		{&p.Within, "keep-within", "snapshots"},
		{&p.WithinHourly, "keep-within-hourly", "hourly snapshots"},
		{&p.WithinDaily, "keep-within-daily", "daily snapshots"},
		{&p.WithinWeekly, "keep-within-weekly", "weekly snapshots"},
		{&p.WithinMonthly, "keep-within-monthly", "monthly snapshots"},
		{&p.WithinYearly, "keep-within-yearly", "yearly snapshots"},
	} {
		f.Var((*durationFlag)(d.d), d.name, "keep "+d.what+" that are newer than `duration` (eg. 1y5m7d2h) relative to the latest snapshot")
	}
	f.Var((*tagListsFlag)(&p.Tags), "keep-tag", "keep snapshots with this `taglist` (can be specified multiple times)")
	f.BoolVar(&o.allowAll, "unsafe-allow-remove-all", false, "allow deleting all snapshots of a snapshot group")

	// -H is --keep-hourly here, so --host has no short form, as in restic.
	f.StringArrayVar(&o.filter.Hosts, "hostname", nil, "only consider snapshots with the given `hostname` (can be specified multiple times)")
	_ = f.MarkDeprecated("hostname", "use --host")
	f.StringArrayVar(&o.filter.Hosts, "host", nil, "only consider snapshots for this `host` (can be specified multiple times, use empty string to unset default value) (default: $RESTIC_HOST)")
	f.StringArrayVar(&o.filter.Tags, "tag", nil, "only consider snapshots including `tag[,tag,...]` (can be specified multiple times)")
	f.StringArrayVar(&o.filter.Paths, "path", nil, "only consider snapshots including this (absolute) `path` (can be specified multiple times, snapshots must include all specified paths)")

	f.BoolVarP(&o.compact, "compact", "c", false, "use compact output format")
	o.groupBy = forget.DefaultGroupBy
	f.VarP((*groupByFlag)(&o.groupBy), "group-by", "g", "`group` snapshots by host, paths and/or tags, separated by comma (disable grouping with '')")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "do not delete anything, just print what would be done")
	f.BoolVar(&o.prune, "prune", false, "automatically run the 'prune' command if snapshots have been removed")

	f.StringVar(&o.maxUnused, "max-unused", "5%", "with --prune: tolerate given `limit` of unused data (absolute value in bytes with suffixes k/K, m/M, g/G, t/T, a value in % or the word 'unlimited')")
	f.StringVar(&o.maxRepackSize, "max-repack-size", "", "with --prune: stop after repacking this much data in total (allowed suffixes for `size`: k/K, m/M, g/G, t/T)")
	f.BoolVar(&o.repackCacheableOnly, "repack-cacheable-only", false, "with --prune: only repack packs which are cacheable")
	f.BoolVar(&o.repackSmall, "repack-small", false, "deprecated. Use --repack-smaller-than to specify a minimum size")
	_ = f.MarkDeprecated("repack-small", "small files are automatically repacked. Use --repack-smaller-than to specify a minimum size")
	f.BoolVar(&o.repackUncompressed, "repack-uncompressed", false, "with --prune: repack all uncompressed data")
	f.StringVar(&o.repackSmallerThan, "repack-smaller-than", "", "with --prune: pack `below-limit` packfiles (allowed suffixes: m/M)")
	f.SortFlags = false
}

func runForget(ctx context.Context, a *app, opts forgetOptions, args []string) error {
	if err := opts.policy.Validate(); err != nil {
		return err
	}
	if len(args) > 0 && !opts.policy.Empty() {
		// restic removes the named snapshots and silently ignores the
		// policy; a command line that asks for both is more likely a
		// mistake than a wish to delete those snapshots regardless.
		return errors.New("snapshot IDs and --keep-* options cannot be combined: the named snapshots would be removed regardless of the policy")
	}
	// The prune flags are checked first, as restic does, so that a typo
	// fails before any snapshot is removed.
	pruneOpts, err := opts.pruneOptions().libOptions(a)
	if err != nil {
		return err
	}
	if a.gopts.NoLock && !opts.dryRun {
		return errors.New("--no-lock is only applicable in combination with --dry-run for forget command")
	}
	p := a.printer()
	// Exclusive like restic's: a concurrent backup must not build on a
	// snapshot being removed, and prune must not run at the same time.
	ctx, r, done, err := a.openLocked(ctx, true, opts.dryRun)
	if err != nil {
		return err
	}
	defer done()

	list, err := selectSnapshots(ctx, r, &opts.filter, args, p)
	if err != nil {
		return err
	}
	// Deterministic where restic's order is random (parallel loading):
	// snapshots with equal times stay in ID order.
	repo.SortSnapshots(list)

	var remove []*repo.Snapshot
	var groups []forgetGroupJSON
	if len(args) > 0 {
		// Snapshots named on the command line go without a policy.
		remove = list
	} else {
		groups, remove, err = applyForgetPolicy(ctx, a, opts, list)
		if err != nil {
			return err
		}
	}

	failed := 0
	if len(remove) > 0 {
		if opts.dryRun {
			p.P("Would have removed the following snapshots:\n%s\n\n", formatIDSet(remove))
		} else {
			failed, err = removeSnapshots(ctx, r, remove, p)
			if err != nil {
				return err
			}
		}
	}
	if a.gopts.JSON && len(groups) > 0 {
		if err := a.term.printJSON(groups); err != nil {
			return err
		}
	}
	if failed > 0 {
		return errRemoveFailed{}
	}
	if len(remove) > 0 && opts.prune {
		if opts.dryRun {
			p.P("%d snapshots would be removed, running prune dry run\n", len(remove))
		} else {
			p.P("%d snapshots have been removed, running prune\n", len(remove))
		}
		// In a dry run the snapshots are still there: prune plans as if
		// they were gone.
		ignore := make(map[blob.ID]struct{}, len(remove))
		for _, sn := range remove {
			ignore[sn.ID()] = struct{}{}
		}
		return runPruneWithRepo(ctx, r, pruneOpts, ignore, p)
	}
	return nil
}

// pruneOptions are the prune flags forget takes; its --dry-run applies to
// the prune too.
func (o forgetOptions) pruneOptions() pruneOptions {
	return pruneOptions{
		dryRun:    o.dryRun,
		maxUnused: o.maxUnused, maxRepackSize: o.maxRepackSize, repackSmallerThan: o.repackSmallerThan,
		repackCacheableOnly: o.repackCacheableOnly, repackSmall: o.repackSmall, repackUncompressed: o.repackUncompressed,
	}
}

// applyForgetPolicy groups the snapshots, applies the policy to each group
// and prints what it keeps and removes. It returns the JSON groups and the
// snapshots to remove, and refuses before anything is removed when the
// policy is empty or would leave a group with nothing.
func applyForgetPolicy(ctx context.Context, a *app, opts forgetOptions, list []*repo.Snapshot) ([]forgetGroupJSON, []*repo.Snapshot, error) {
	policy := opts.policy
	if policy.Empty() {
		if !opts.allowAll {
			return nil, nil, errors.New("no policy was specified, no snapshots will be removed")
		}
		if opts.filter.empty() {
			return nil, nil, errors.New("--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified")
		}
	}
	p := a.printer()
	p.P("Applying Policy: %s", policy)

	now := time.Now()
	var remove []*repo.Snapshot
	var out []forgetGroupJSON
	for _, g := range forget.Group(list, opts.groupBy) {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		// restic prints each snapshot with sorted paths and, when grouping
		// by tags, sorted tags (its grouping sorts them in place).
		for _, sn := range g.Snapshots {
			sort.Strings(sn.Paths)
			if opts.groupBy.Tags {
				sort.Strings(sn.Tags)
			}
		}
		if a.gopts.Verbose >= 1 && !a.gopts.JSON {
			if h := forgetGroupHeader(g.Key); h != "" {
				a.term.Print(h)
			}
		}
		res := forget.Apply(g.Snapshots, policy, now)
		if !policy.Empty() && len(res.Keep) == 0 {
			return nil, nil, fmt.Errorf("refusing to delete last snapshot of snapshot group \"%s\"", g.Key.String())
		}
		if !a.gopts.Quiet && !a.gopts.JSON {
			if len(res.Keep) > 0 {
				p.P("keep %d snapshots:", len(res.Keep))
				if err := printForgetTable(a, res.Keep, res.Reasons, opts.compact); err != nil {
					return nil, nil, err
				}
				p.P("\n")
			}
			if len(res.Remove) > 0 {
				p.P("remove %d snapshots:", len(res.Remove))
				if err := printForgetTable(a, res.Remove, nil, opts.compact); err != nil {
					return nil, nil, err
				}
				p.P("\n")
			}
		}
		out = append(out, newForgetGroupJSON(g.Key, res))
		remove = append(remove, res.Remove...)
	}
	return out, remove, nil
}

// forgetGroupHeader is restic's group line; nothing without grouping.
func forgetGroupHeader(k forget.GroupKey) string {
	if k.Hostname == "" && k.Tags == nil && k.Paths == nil {
		return ""
	}
	return groupHeader(groupKey{Hostname: k.Hostname, Paths: k.Paths, Tags: k.Tags})
}

// removeSnapshots deletes the snapshot files with as many requests at once
// as the backend serves well. A file that cannot be removed is reported
// and counted, and the others are still removed, as restic does.
func removeSnapshots(ctx context.Context, r *repo.Repository, list []*repo.Snapshot, p *printer) (failed int, err error) {
	be := r.Backend()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, be.Connections())))
	errs := make([]error, len(list))
	for i, sn := range list {
		id := sn.ID()
		g.Go(func() error {
			// Gone already (another forget) counts as removed.
			errs[i] = r.RemoveSnapshot(gctx, id)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	for i, err := range errs {
		id := list[i].ID()
		if err != nil {
			failed++
			p.E("unable to remove %s/%s from the repository: %v", backend.SnapshotFile, id, err)
			continue
		}
		p.VV("removed %s/%s", backend.SnapshotFile, id)
	}
	return failed, nil
}

// errRemoveFailed ends a forget in which some snapshot files could not be
// deleted: restic's exit status 3.
type errRemoveFailed struct{}

func (errRemoveFailed) Error() string        { return "failed to remove one or more snapshots" }
func (errRemoveFailed) Is(target error) bool { return target == errIncomplete }

// formatIDSet prints IDs as restic prints an ID set: short IDs sorted by
// the full ID, in braces.
func formatIDSet(list []*repo.Snapshot) string {
	ids := make([]blob.ID, len(list))
	for i, sn := range list {
		ids[i] = sn.ID()
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	short := make([]string, len(ids))
	for i, id := range ids {
		short[i] = id.Str()
	}
	return "{" + strings.Join(short, " ") + "}"
}

// printForgetTable is the snapshots table with the reasons column for the
// kept snapshots, oldest first, as restic prints it.
func printForgetTable(a *app, list []*repo.Snapshot, reasons []forget.Reason, compact bool) error {
	why := map[blob.ID][]string{}
	for _, r := range reasons {
		why[r.Snapshot.ID()] = r.Matches
	}
	list = append([]*repo.Snapshot(nil), list...)
	sort.SliceStable(list, func(i, j int) bool { return list[i].Time.Before(list[j].Time) })

	return printSnapshotTable(a, list, compact, why)
}

// forgetGroupJSON is one group of `forget --json`, shaped like restic's.
type forgetGroupJSON struct {
	Tags    []string         `json:"tags"`
	Host    string           `json:"host"`
	Paths   []string         `json:"paths"`
	Keep    []snapshotJSON   `json:"keep"`
	Remove  []snapshotJSON   `json:"remove"`
	Reasons []keepReasonJSON `json:"reasons"`
}

type keepReasonJSON struct {
	Snapshot snapshotJSON `json:"snapshot"`
	Matches  []string     `json:"matches"`
}

func newForgetGroupJSON(k forget.GroupKey, res forget.Result) forgetGroupJSON {
	g := forgetGroupJSON{Tags: k.Tags, Host: k.Hostname, Paths: k.Paths}
	// nil (JSON null) for an empty list, as restic prints it
	for _, sn := range res.Keep {
		g.Keep = append(g.Keep, newSnapshotJSON(sn))
	}
	for _, sn := range res.Remove {
		g.Remove = append(g.Remove, newSnapshotJSON(sn))
	}
	for _, r := range res.Reasons {
		g.Reasons = append(g.Reasons, keepReasonJSON{Snapshot: newSnapshotJSON(r.Snapshot), Matches: r.Matches})
	}
	return g
}

func newSnapshotJSON(sn *repo.Snapshot) snapshotJSON {
	return snapshotJSON{Snapshot: sn, ID: sn.ID(), ShortID: sn.ID().Str()}
}

// countFlag is a keep-* count flag: a number or "unlimited".
type countFlag int

func (c *countFlag) Set(s string) error {
	n, err := forget.ParseCount(s)
	if err != nil {
		return err
	}
	*c = countFlag(n)
	return nil
}
func (c *countFlag) String() string { return forget.FormatCount(int(*c)) }
func (c *countFlag) Type() string   { return "n" }

// durationFlag is a keep-within* flag such as "1y2m".
type durationFlag forget.Duration

func (d *durationFlag) Set(s string) error {
	v, err := forget.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}
func (d *durationFlag) String() string { return forget.Duration(*d).String() }
func (d *durationFlag) Type() string   { return "duration" }

// tagListsFlag collects repeated --keep-tag a,b values.
type tagListsFlag [][]string

func (l *tagListsFlag) Set(s string) error {
	*l = append(*l, forget.ParseTags(s))
	return nil
}

func (l *tagListsFlag) String() string {
	if len(*l) == 0 {
		return "" // no "(default [])" in the help
	}
	parts := make([]string, len(*l))
	for i, t := range *l {
		parts[i] = "[" + strings.Join(t, ", ") + "]"
	}
	return "[" + strings.Join(parts, " ") + "]"
}
func (l *tagListsFlag) Type() string { return "TagLists" }

// groupByFlag is --group-by.
type groupByFlag forget.GroupBy

func (g *groupByFlag) Set(s string) error {
	v, err := forget.ParseGroupBy(s)
	if err != nil {
		return err
	}
	*g = groupByFlag(v)
	return nil
}
func (g *groupByFlag) String() string { return forget.GroupBy(*g).String() }
func (g *groupByFlag) Type() string   { return "group" }
