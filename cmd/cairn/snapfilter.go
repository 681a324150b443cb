package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// snapshotFilterFlags are restic's --host, --tag and --path selection
// flags. With one snapshot they only apply to "latest".
type snapshotFilterFlags struct {
	Hosts []string
	Tags  []string
	Paths []string
}

func (f *snapshotFilterFlags) add(fs *pflag.FlagSet, single bool) {
	when := ""
	if single {
		when = `, when snapshot ID "latest" is given`
	}
	fs.StringArrayVarP(&f.Hosts, "host", "H", nil, "only consider snapshots for this `host`"+when+" (can be specified multiple times, use empty string to unset default value) (default: $RESTIC_HOST)")
	fs.StringArrayVar(&f.Tags, "tag", nil, "only consider snapshots including `tag[,tag,...]`"+when+" (can be specified multiple times)")
	fs.StringArrayVar(&f.Paths, "path", nil, "only consider snapshots including this (absolute) `path`"+when+" (can be specified multiple times, snapshots must include all specified paths)")
}

// filter builds the repository filter. Like restic 0.19, $RESTIC_HOST is
// the default host unless --host was given; --host "" selects all hosts.
func (f *snapshotFilterFlags) filter() *repo.SnapshotFilter {
	hosts := f.Hosts
	if hosts == nil {
		if h := os.Getenv("RESTIC_HOST"); h != "" {
			hosts = []string{h}
		}
	}
	if len(hosts) == 1 && hosts[0] == "" {
		hosts = nil
	}
	return &repo.SnapshotFilter{Hosts: hosts, Paths: f.Paths, Tags: repo.ParseTagLists(f.Tags)}
}

func (f *snapshotFilterFlags) empty() bool {
	flt := f.filter()
	return len(flt.Hosts) == 0 && len(flt.Paths) == 0 && len(flt.Tags) == 0
}

// findSnapshot resolves restic's "ID[:subfolder]" or "latest[:subfolder]"
// argument with the filter.
func findSnapshot(ctx context.Context, r *repo.Repository, spec string, f *snapshotFilterFlags) (*repo.Snapshot, string, error) {
	sn, sub, err := r.FindSnapshot(ctx, spec, f.filter())
	if err != nil {
		return nil, "", err
	}
	return sn, sub, nil
}

// findTreeDirectory follows subfolder from the tree id, like restic's
// "snapshot:subfolder" syntax.
func findTreeDirectory(ctx context.Context, r *repo.Repository, id blob.ID, subfolder string) (blob.ID, error) {
	dir := ""
	for _, name := range strings.Split(path.Clean("/"+subfolder), "/") {
		if name == "" || name == "." {
			continue
		}
		dir = path.Join(dir, name)
		t, err := r.LoadTree(ctx, id)
		if err != nil {
			return blob.ID{}, fmt.Errorf("path %s: %w", dir, err)
		}
		n := t.Find(name)
		if n == nil {
			return blob.ID{}, fmt.Errorf("path %s: not found", dir)
		}
		if n.Type != tree.TypeDir || n.Subtree == nil {
			return blob.ID{}, fmt.Errorf("path %s: not a directory", dir)
		}
		id = *n.Subtree
	}
	return id, nil
}

// errNoSnapshotID is returned when a command needs a snapshot and got none.
var errNoSnapshotID = errors.New("no snapshot ID specified, specify snapshot ID or use special ID 'latest'")
