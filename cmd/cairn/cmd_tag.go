package main

import (
	"context"
	"errors"
	"slices"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

type tagOptions struct {
	filter           snapshotFilterFlags
	set, add, remove tagListsFlag
}

func newTagCommand(a *app) *cobra.Command {
	var opts tagOptions
	cmd := &cobra.Command{
		Use:   "tag [flags] [snapshotID ...]",
		Short: "Modify tags on snapshots",
		Long: `
The "tag" command changes the tags of existing snapshots: --set replaces
them, --add and --remove add to or take from the tags a snapshot has.

Without snapshot IDs, every snapshot that matches the --host, --tag and
--path filters is changed. A changed snapshot is saved as a new snapshot
file and the old one is removed; its "original" field keeps the ID of the
first version, as restic records it.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runTag(c.Context(), a, opts, args)
		},
	}
	f := cmd.Flags()
	f.Var(&opts.set, "set", "`tags` which will replace the existing tags in the format `tag[,tag,...]` (can be given multiple times)")
	f.Var(&opts.add, "add", "`tags` which will be added to the existing tags in the format `tag[,tag,...]` (can be given multiple times)")
	f.Var(&opts.remove, "remove", "`tags` which will be removed from the existing tags in the format `tag[,tag,...]` (can be given multiple times)")
	opts.filter.add(f, false)
	return cmd
}

// tagChangedJSON and tagSummaryJSON are restic's `tag --json` messages.
type tagChangedJSON struct {
	MessageType   string  `json:"message_type"` // "changed"
	OldSnapshotID blob.ID `json:"old_snapshot_id"`
	NewSnapshotID blob.ID `json:"new_snapshot_id"`
}

type tagSummaryJSON struct {
	MessageType      string `json:"message_type"` // "summary"
	ChangedSnapshots int    `json:"changed_snapshots"`
}

func runTag(ctx context.Context, a *app, opts tagOptions, args []string) error {
	if len(opts.set) == 0 && len(opts.add) == 0 && len(opts.remove) == 0 {
		return errors.New("nothing to do!")
	}
	if len(opts.set) != 0 && (len(opts.add) != 0 || len(opts.remove) != 0) {
		return errors.New("--set and --add/--remove cannot be given at the same time")
	}
	p := a.printer()
	p.P("create exclusive lock for repository")
	// Exclusive like restic's: the old snapshot file is removed, which a
	// concurrent backup could be using as its parent.
	ctx, r, done, err := a.openLocked(ctx, true, false)
	if err != nil {
		return err
	}
	defer done()

	list, err := selectSnapshots(ctx, r, &opts.filter, args, p)
	if err != nil {
		return err
	}
	set, add, remove := flattenTagLists(opts.set), flattenTagLists(opts.add), flattenTagLists(opts.remove)
	changed := 0
	for _, sn := range list {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		old := sn.ID()
		if !changeTags(sn, set, add, remove) {
			continue
		}
		id, err := replaceSnapshot(ctx, r, sn)
		if err != nil {
			// restic goes on with the other snapshots and still exits 0.
			p.E("unable to modify the tags for snapshot ID %q, ignoring: %v", old.String(), err)
			continue
		}
		changed++
		if a.gopts.JSON {
			if err := a.term.printJSON(tagChangedJSON{MessageType: "changed", OldSnapshotID: old, NewSnapshotID: id}); err != nil {
				return err
			}
			continue
		}
		p.V("old snapshot ID: %v -> new snapshot ID: %v", old, id)
	}
	if a.gopts.JSON {
		return a.term.printJSON(tagSummaryJSON{MessageType: "summary", ChangedSnapshots: changed})
	}
	if changed == 0 {
		p.P("no snapshots were modified")
	} else {
		p.P("modified %v snapshots", changed)
	}
	return nil
}

// flattenTagLists joins the lists of repeated flags and drops empty tags, as
// restic does. So `--set ""` clears nothing in restic 0.19.1: the list is
// empty after flattening and the snapshot counts as unchanged.
func flattenTagLists(lists tagListsFlag) []string {
	out := []string{}
	for _, l := range lists {
		for _, t := range l {
			if t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// changeTags applies the change to sn and reports whether its tags
// changed. The order of the result is restic's: --set keeps the given
// order (duplicates too), --add appends, and --remove moves the last tag
// into the removed one's place.
func changeTags(sn *repo.Snapshot, set, add, remove []string) bool {
	if len(set) > 0 {
		sn.Tags = set
		return true
	}
	changed := false
	for _, t := range add {
		if !slices.Contains(sn.Tags, t) {
			sn.Tags = append(sn.Tags, t)
			changed = true
		}
	}
	for _, t := range remove {
		for i, have := range sn.Tags {
			if have == t {
				last := len(sn.Tags) - 1
				sn.Tags[i] = sn.Tags[last]
				sn.Tags = sn.Tags[:last]
				changed = true
				break
			}
		}
	}
	return changed
}

// replaceSnapshot saves the changed snapshot as a new file, recording the
// first version's ID in Original, and then removes the old file: a crash
// in between leaves both, never neither.
func replaceSnapshot(ctx context.Context, r *repo.Repository, sn *repo.Snapshot) (blob.ID, error) {
	old := sn.ID()
	if sn.Original == nil {
		sn.Original = &old
	}
	id, err := r.SaveSnapshot(ctx, sn)
	if err != nil {
		return blob.ID{}, err
	}
	// Already gone (a concurrent tag or forget): the new one is saved, so
	// the tags did change; forget and repair snapshots count it so too.
	if err := r.RemoveSnapshot(ctx, old); err != nil {
		return blob.ID{}, err
	}
	return id, nil
}
