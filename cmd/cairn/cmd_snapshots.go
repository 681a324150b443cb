package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

type snapshotsOptions struct {
	filter  snapshotFilterFlags
	Compact bool
	Latest  int
	GroupBy string
}

func newSnapshotsCommand(a *app) *cobra.Command {
	var opts snapshotsOptions
	cmd := &cobra.Command{
		Use:   "snapshots [flags] [snapshotID ...]",
		Short: "List all snapshots",
		Long: `
The "snapshots" command lists all snapshots stored in the repository.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runSnapshots(c.Context(), a, opts, args)
		},
	}
	f := cmd.Flags()
	opts.filter.add(f, false)
	f.BoolVarP(&opts.Compact, "compact", "c", false, "use compact output format")
	f.IntVar(&opts.Latest, "latest", 0, "only show the last `n` snapshots for each host and path")
	f.StringVarP(&opts.GroupBy, "group-by", "g", "", "`group` snapshots by host, paths and/or tags, separated by comma")
	return cmd
}

// groupBy is restic's --group-by: which snapshot fields form a group.
type groupBy struct{ Host, Path, Tag bool }

func parseGroupBy(s string) (groupBy, error) {
	var g groupBy
	for _, part := range strings.Split(s, ",") {
		switch part {
		case "host", "hosts":
			g.Host = true
		case "path", "paths":
			g.Path = true
		case "tag", "tags":
			g.Tag = true
		case "":
		default:
			return groupBy{}, fmt.Errorf("unknown grouping option: %q", part)
		}
	}
	return g, nil
}

func (g groupBy) any() bool { return g.Host || g.Path || g.Tag }

// groupKey is restic's group_key JSON.
type groupKey struct {
	Hostname string   `json:"hostname"`
	Paths    []string `json:"paths"`
	Tags     []string `json:"tags"`
}

// snapshotJSON is a snapshot as `snapshots --json` prints it: the stored
// fields plus its ID.
type snapshotJSON struct {
	*repo.Snapshot
	ID      blob.ID `json:"id"`
	ShortID string  `json:"short_id"` // deprecated in restic, still printed
}

type snapshotGroupJSON struct {
	GroupKey  groupKey       `json:"group_key"`
	Snapshots []snapshotJSON `json:"snapshots"`
}

func runSnapshots(ctx context.Context, a *app, opts snapshotsOptions, args []string) error {
	g, err := parseGroupBy(opts.GroupBy)
	if err != nil {
		return err
	}
	p := a.printer()
	ctx, r, done, err := a.openLocked(ctx, false, true)
	if err != nil {
		return err
	}
	defer done()

	list, err := selectSnapshots(ctx, r, &opts.filter, args, p)
	if err != nil {
		return err
	}
	groups := groupSnapshots(list, g)
	for _, grp := range groups {
		if opts.Latest > 0 {
			grp.list = latestSnapshots(grp.list, opts.Latest, g.any())
		}
		// oldest first, like restic prints them
		sort.SliceStable(grp.list, func(i, j int) bool { return grp.list[i].Time.Before(grp.list[j].Time) })
	}
	if a.gopts.JSON {
		return printSnapshotsJSON(a, groups, g.any())
	}
	for _, grp := range groups {
		if g.any() {
			a.term.Print(groupHeader(grp.key))
		}
		if err := printSnapshotTable(a, grp.list, opts.Compact, nil); err != nil {
			return err
		}
	}
	return nil
}

// selectSnapshots returns the snapshots named by args (IDs, prefixes,
// "latest") or, without args, all that pass the filter. Snapshots that
// cannot be loaded are reported and skipped, like restic does.
func selectSnapshots(ctx context.Context, r *repo.Repository, f *snapshotFilterFlags, args []string, p *printer) ([]*repo.Snapshot, error) {
	list, err := resolveSnapshots(ctx, r, f, args, func(what string, err error) error {
		p.E("Ignoring %q: %v", what, err)
		return nil
	})
	if err != nil && len(args) == 0 {
		return nil, fmt.Errorf("could not load snapshots: %w", err)
	}
	return list, err
}

// resolveSnapshots does the work of selectSnapshots; onErr decides whether
// a snapshot (or the filters, ignored next to explicit IDs) that cannot be
// used is skipped (nil) or ends the selection (its error).
func resolveSnapshots(ctx context.Context, r *repo.Repository, f *snapshotFilterFlags, args []string, onErr func(what string, err error) error) ([]*repo.Snapshot, error) {
	if len(args) == 0 {
		flt := f.filter()
		var out []*repo.Snapshot
		err := r.ForEachSnapshot(ctx, func(id blob.ID, sn *repo.Snapshot, err error) error {
			if err != nil {
				return onErr(id.String(), err)
			}
			if flt.Matches(sn) {
				out = append(out, sn)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	var out []*repo.Snapshot
	seen := map[blob.ID]bool{}
	usedFilter := false
	for _, s := range args {
		var sn *repo.Snapshot
		var err error
		switch {
		case s == "latest":
			if usedFilter {
				continue
			}
			usedFilter = true
			sn, _, err = r.FindSnapshot(ctx, "latest", f.filter())
		case strings.Contains(s, ":"):
			err = errors.New("<snapshot>:<subfolder> syntax not allowed")
		default:
			var id blob.ID
			if id, err = r.FindID(ctx, backend.SnapshotFile, s); err == nil {
				sn, err = r.LoadSnapshot(ctx, id)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			if err := onErr(s, err); err != nil {
				return nil, err
			}
			continue
		}
		if seen[sn.ID()] {
			continue
		}
		seen[sn.ID()] = true
		out = append(out, sn)
	}
	if !usedFilter && !f.empty() {
		if err := onErr("filters", errors.New("explicit snapshot ids are given")); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type snapshotGroup struct {
	key  groupKey
	list []*repo.Snapshot
}

// groupSnapshots groups like restic (paths and, for tag groups, tags
// sorted), in a stable order.
func groupSnapshots(list []*repo.Snapshot, g groupBy) []*snapshotGroup {
	byKey := map[string]*snapshotGroup{}
	var order []string
	for _, sn := range list {
		sort.Strings(sn.Paths) // restic shows sorted paths
		var k groupKey
		if g.Host {
			k.Hostname = sn.Hostname
		}
		if g.Path {
			k.Paths = sn.Paths
		}
		if g.Tag {
			k.Tags = append([]string(nil), sn.Tags...)
			sort.Strings(k.Tags)
		}
		buf, _ := json.Marshal(k)
		grp := byKey[string(buf)]
		if grp == nil {
			grp = &snapshotGroup{key: k}
			byKey[string(buf)] = grp
			order = append(order, string(buf))
		}
		grp.list = append(grp.list, sn)
	}
	sort.Strings(order)
	out := make([]*snapshotGroup, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	if len(out) == 0 {
		out = append(out, &snapshotGroup{})
	}
	return out
}

// latestSnapshots keeps the n newest snapshots of a group, or, without
// grouping, of each host and set of paths.
func latestSnapshots(list []*repo.Snapshot, n int, grouped bool) []*repo.Snapshot {
	sort.SliceStable(list, func(i, j int) bool { return list[i].Time.After(list[j].Time) })
	if grouped {
		return list[:min(n, len(list))]
	}
	seen := map[string]int{}
	var out []*repo.Snapshot
	for _, sn := range list {
		paths := append([]string(nil), sn.Paths...)
		sort.Strings(paths)
		k := sn.Hostname + "\x00" + strings.Join(paths, "|")
		if seen[k] < n {
			seen[k]++
			out = append(out, sn)
		}
	}
	return out
}

func printSnapshotsJSON(a *app, groups []*snapshotGroup, grouped bool) error {
	toJSON := func(list []*repo.Snapshot) []snapshotJSON {
		out := []snapshotJSON{}
		for _, sn := range list {
			out = append(out, snapshotJSON{Snapshot: sn, ID: sn.ID(), ShortID: sn.ID().Str()})
		}
		return out
	}
	if !grouped {
		var all []*repo.Snapshot
		for _, g := range groups {
			all = append(all, g.list...)
		}
		return a.term.printJSON(toJSON(all))
	}
	out := []snapshotGroupJSON{}
	for _, g := range groups {
		if len(g.list) == 0 {
			continue
		}
		out = append(out, snapshotGroupJSON{GroupKey: g.key, Snapshots: toJSON(g.list)})
	}
	return a.term.printJSON(out)
}

func groupHeader(k groupKey) string {
	var parts []string
	if k.Hostname != "" {
		parts = append(parts, "host ["+k.Hostname+"]")
	}
	if k.Tags != nil {
		parts = append(parts, "tags ["+strings.Join(k.Tags, ", ")+"]")
	}
	if k.Paths != nil {
		parts = append(parts, "paths ["+strings.Join(k.Paths, ", ")+"]")
	}
	h := "snapshots"
	if len(parts) > 0 {
		h += " for (" + strings.Join(parts, ", ") + ")"
	}
	return h + ":\n"
}

// printSnapshotTable prints restic's snapshot table; forget adds the
// Reasons column with why, the matched rules of each kept snapshot.
func printSnapshotTable(a *app, list []*repo.Snapshot, compact bool, why map[blob.ID][]string) error {
	hasSize := false
	for _, sn := range list {
		hasSize = hasSize || sn.Summary != nil
	}
	t := &table{}
	if compact {
		t.headers = []string{"ID", "Time", "Host", "Tags  "}
	} else {
		t.headers = []string{"ID", "Time", "Host      ", "Tags      "}
		if len(why) > 0 {
			t.headers = append(t.headers, "Reasons")
		}
		t.headers = append(t.headers, "Paths")
	}
	if hasSize {
		t.headers = append(t.headers, "Size")
	}
	for _, sn := range list {
		id := sn.ID()
		row := []string{id.Str(), sn.Time.Local().Format(timeFormat), sn.Hostname}
		if compact {
			row = append(row, strings.Join(sn.Tags, "\n"))
		} else {
			row = append(row, strings.Join(sn.Tags, ","))
			if len(why) > 0 {
				row = append(row, strings.Join(why[id], "\n"))
			}
			row = append(row, strings.Join(sn.Paths, "\n"))
			if len(sn.Paths) > 1 {
				t.blankBetween = true
			}
		}
		if hasSize {
			size := ""
			if sn.Summary != nil {
				size = formatBytes(sn.Summary.TotalBytesProcessed)
			}
			row = append(row, size)
		}
		t.addRow(row...)
	}
	zone := time.Now().Location().String()
	if zone == "Local" {
		zone = "local time"
	}
	t.footer = []string{"Timestamps shown in " + zone, fmt.Sprintf("%d snapshots", len(list))}
	return a.term.printTable(t)
}
