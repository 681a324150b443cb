package copy

import (
	"slices"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Skipped is a source snapshot that the destination holds a copy of.
type Skipped struct {
	Source, Copy *repo.Snapshot
}

// Missing returns the snapshots of src that have no copy among dst, in
// the order given, and the ones that have, with their copy. It is
// restic's test: a snapshot in dst is a copy when its Original (or its
// own ID) is the source snapshot's Original (or ID), and when time, tree,
// host, user, uid, gid, excludes (in order) and paths and tags (in any
// order) are the same. Parent and Original may differ. A snapshot whose
// tags were changed after it was copied is therefore copied again.
//
// restic compares against the destination's snapshots that match the
// same host, tag and path filter as the source's: pass dst filtered so.
func Missing(src, dst []*repo.Snapshot) (missing []*repo.Snapshot, skipped []Skipped) {
	byOriginal := make(map[blob.ID][]*repo.Snapshot, 2*len(dst))
	for _, sn := range dst {
		if sn.Original != nil && !sn.Original.IsNull() {
			byOriginal[*sn.Original] = append(byOriginal[*sn.Original], sn)
		}
		// An identical copy has the same ID.
		byOriginal[sn.ID()] = append(byOriginal[sn.ID()], sn)
	}
	for _, sn := range src {
		key := sn.ID()
		if sn.Original != nil {
			key = *sn.Original
		}
		var found *repo.Snapshot
		for _, cand := range byOriginal[key] {
			if similar(cand, sn) {
				found = cand
				break
			}
		}
		if found != nil {
			skipped = append(skipped, Skipped{Source: sn, Copy: found})
			continue
		}
		missing = append(missing, sn)
	}
	return missing, skipped
}

// similar reports whether a and b are the same backup: every field but
// Parent and Original (and the program version and summary, which restic
// ignores too).
func similar(a, b *repo.Snapshot) bool {
	if !a.Time.Equal(b.Time) || a.Tree == nil || b.Tree == nil || *a.Tree != *b.Tree ||
		a.Hostname != b.Hostname || a.Username != b.Username || a.UID != b.UID || a.GID != b.GID ||
		len(a.Paths) != len(b.Paths) || len(a.Tags) != len(b.Tags) || !slices.Equal(a.Excludes, b.Excludes) {
		return false
	}
	return containsAll(a.Paths, b.Paths) && containsAll(a.Tags, b.Tags)
}

// containsAll reports whether every element of want is in have.
func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
