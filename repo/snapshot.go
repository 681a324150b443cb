package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Snapshot is one backup: when, of what, from where, and its root tree.
// Field order and omit rules match restic's JSON exactly.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Parent   *blob.ID  `json:"parent,omitempty"`
	Tree     *blob.ID  `json:"tree"`
	Paths    []string  `json:"paths"`
	Hostname string    `json:"hostname,omitempty"`
	Username string    `json:"username,omitempty"`
	UID      uint32    `json:"uid,omitempty"`
	GID      uint32    `json:"gid,omitempty"`
	Excludes []string  `json:"excludes,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	// Original is the ID of the first version of a snapshot whose metadata
	// was rewritten (tag, rewrite).
	Original *blob.ID `json:"original,omitempty"`

	ProgramVersion string           `json:"program_version,omitempty"`
	Summary        *SnapshotSummary `json:"summary,omitempty"`

	id blob.ID // the file name it was loaded from or saved as
}

// SnapshotSummary holds a backup's statistics (restic ≥ 0.17).
type SnapshotSummary struct {
	BackupStart time.Time `json:"backup_start"`
	BackupEnd   time.Time `json:"backup_end"`

	FilesNew            uint   `json:"files_new"`
	FilesChanged        uint   `json:"files_changed"`
	FilesUnmodified     uint   `json:"files_unmodified"`
	DirsNew             uint   `json:"dirs_new"`
	DirsChanged         uint   `json:"dirs_changed"`
	DirsUnmodified      uint   `json:"dirs_unmodified"`
	DataBlobs           int    `json:"data_blobs"`
	TreeBlobs           int    `json:"tree_blobs"`
	DataAdded           uint64 `json:"data_added"`
	DataAddedPacked     uint64 `json:"data_added_packed"`
	TotalFilesProcessed uint   `json:"total_files_processed"`
	TotalBytesProcessed uint64 `json:"total_bytes_processed"`
}

// ID is the snapshot's ID (zero until it was saved or loaded).
func (sn *Snapshot) ID() blob.ID { return sn.id }

func (sn *Snapshot) String() string {
	return fmt.Sprintf("snapshot %s of %v at %s by %s@%s", sn.id.Str(), sn.Paths, sn.Time, sn.Username, sn.Hostname)
}

// SaveSnapshot stores sn and sets its ID. sn.Tree must be set, and every blob
// it references must already be stored and indexed.
func (r *Repository) SaveSnapshot(ctx context.Context, sn *Snapshot) (blob.ID, error) {
	if sn.Tree == nil || sn.Tree.IsNull() {
		return blob.ID{}, errors.New("save snapshot: no tree")
	}
	if sn.Paths == nil {
		sn.Paths = []string{}
	}
	buf, err := json.Marshal(sn)
	if err != nil {
		return blob.ID{}, fmt.Errorf("encode snapshot: %w", err)
	}
	id, err := r.SaveUnpacked(ctx, backend.SnapshotFile, buf)
	if err != nil {
		return blob.ID{}, err
	}
	sn.id = id
	return id, nil
}

// LoadSnapshot loads one snapshot.
func (r *Repository) LoadSnapshot(ctx context.Context, id blob.ID) (*Snapshot, error) {
	buf, err := r.LoadUnpacked(ctx, backend.SnapshotFile, id)
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id.Str(), err)
	}
	sn := &Snapshot{}
	if err := json.Unmarshal(buf, sn); err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id.Str(), err)
	}
	if sn.Tree == nil {
		return nil, fmt.Errorf("load snapshot %s: no tree", id.Str())
	}
	sn.id = id
	return sn, nil
}

// RemoveSnapshot deletes the snapshot file id. A file that is already gone
// (removed by a concurrent forget or tag) counts as removed: what was asked
// for holds.
func (r *Repository) RemoveSnapshot(ctx context.Context, id blob.ID) error {
	err := r.be.Remove(ctx, backend.Handle{Type: backend.SnapshotFile, Name: id.String()})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove snapshot %s: %w", id.Str(), err)
	}
	return nil
}

// ForEachSnapshot loads every snapshot (in parallel) and calls fn for each,
// never concurrently. A snapshot that fails to load is passed with its error
// (sn nil); fn decides whether to go on.
func (r *Repository) ForEachSnapshot(ctx context.Context, fn func(id blob.ID, sn *Snapshot, err error) error) error {
	var ids []blob.ID
	if err := r.List(ctx, backend.SnapshotFile, func(id blob.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(2, r.be.Connections())))
	var mu sync.Mutex
	for _, id := range ids {
		g.Go(func() error {
			sn, err := r.LoadSnapshot(gctx, id)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			return fn(id, sn, err)
		})
	}
	return g.Wait()
}

// Snapshots returns all loadable snapshots sorted by time (oldest first). The
// IDs of snapshots that failed to load are reported through warn, if set.
func (r *Repository) Snapshots(ctx context.Context, warn func(id blob.ID, err error)) ([]*Snapshot, error) {
	var out []*Snapshot
	err := r.ForEachSnapshot(ctx, func(id blob.ID, sn *Snapshot, err error) error {
		if err != nil {
			if warn != nil {
				warn(id, err)
			}
			return nil
		}
		out = append(out, sn)
		return nil
	})
	if err != nil {
		return nil, err
	}
	SortSnapshots(out)
	return out, nil
}

// SortSnapshots sorts by time, oldest first, then by ID for a stable order.
func SortSnapshots(list []*Snapshot) {
	sort.SliceStable(list, func(i, j int) bool {
		if !list[i].Time.Equal(list[j].Time) {
			return list[i].Time.Before(list[j].Time)
		}
		return list[i].id.Compare(list[j].id) < 0
	})
}

// ErrNoSnapshot means no snapshot matched.
var ErrNoSnapshot = errors.New("no snapshot found")

// SnapshotFilter selects snapshots by host, path and tags like restic's
// --host, --path and --tag.
type SnapshotFilter struct {
	Hosts []string
	// Paths must all be among the snapshot's paths (made absolute first).
	Paths []string
	// Tags: the snapshot matches if it has all tags of at least one list
	// (restic's "--tag a,b --tag c" = (a AND b) OR c). An empty tag in a list
	// matches snapshots without tags.
	Tags [][]string
	// Before, if set, excludes snapshots taken after it.
	Before time.Time
}

// ParseTagLists turns repeated --tag values ("a,b") into tag lists.
func ParseTagLists(values []string) [][]string {
	var out [][]string
	for _, v := range values {
		var l []string
		for _, t := range strings.Split(v, ",") {
			l = append(l, strings.TrimSpace(t))
		}
		out = append(out, l)
	}
	return out
}

// Matches reports whether sn passes the filter.
func (f *SnapshotFilter) Matches(sn *Snapshot) bool {
	if f == nil {
		return true
	}
	if !f.Before.IsZero() && sn.Time.After(f.Before) {
		return false
	}
	if len(f.Hosts) > 0 && !contains(f.Hosts, sn.Hostname) {
		return false
	}
	for _, p := range f.Paths {
		if !contains(sn.Paths, absPath(p)) {
			return false
		}
	}
	if len(f.Tags) == 0 {
		return true
	}
	for _, list := range f.Tags {
		if hasTags(sn, list) {
			return true
		}
	}
	return false
}

func hasTags(sn *Snapshot, list []string) bool {
	for _, tag := range list {
		if tag == "" && len(sn.Tags) == 0 {
			return true
		}
		if !contains(sn.Tags, tag) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// FindSnapshot resolves restic's snapshot syntax: a full ID, a unique ID
// prefix, or "latest" (the newest snapshot passing f). A ":subfolder"
// suffix is split off and returned.
func (r *Repository) FindSnapshot(ctx context.Context, spec string, f *SnapshotFilter) (*Snapshot, string, error) {
	s, subfolder, _ := strings.Cut(spec, ":")
	if s == "latest" {
		var latest *Snapshot
		err := r.ForEachSnapshot(ctx, func(id blob.ID, sn *Snapshot, err error) error {
			if err != nil {
				return fmt.Errorf("error loading snapshot %s: %w", id.Str(), err)
			}
			if !f.Matches(sn) {
				return nil
			}
			if latest == nil || sn.Time.After(latest.Time) {
				latest = sn
			}
			return nil
		})
		if err != nil {
			return nil, "", err
		}
		if latest == nil {
			return nil, "", fmt.Errorf("latest snapshot (hosts %v, paths %v, tags %v): %w", filterHosts(f), filterPaths(f), filterTags(f), ErrNoSnapshot)
		}
		return latest, subfolder, nil
	}
	id, err := r.FindID(ctx, backend.SnapshotFile, s)
	if err != nil {
		return nil, "", err
	}
	sn, err := r.LoadSnapshot(ctx, id)
	return sn, subfolder, err
}

func filterHosts(f *SnapshotFilter) []string {
	if f == nil {
		return nil
	}
	return f.Hosts
}

func filterPaths(f *SnapshotFilter) []string {
	if f == nil {
		return nil
	}
	return f.Paths
}

func filterTags(f *SnapshotFilter) [][]string {
	if f == nil {
		return nil
	}
	return f.Tags
}

// FindID resolves a full ID or a unique prefix of at least one character to
// the ID of a file of type t.
func (r *Repository) FindID(ctx context.Context, t backend.FileType, prefix string) (blob.ID, error) {
	if id, err := blob.ParseID(prefix); err == nil {
		return id, nil
	}
	prefix = strings.ToLower(prefix)
	if prefix == "" {
		return blob.ID{}, fmt.Errorf("empty %s ID", t)
	}
	var found []blob.ID
	err := r.List(ctx, t, func(id blob.ID, _ int64) error {
		if strings.HasPrefix(id.String(), prefix) {
			found = append(found, id)
		}
		return nil
	})
	if err != nil {
		return blob.ID{}, err
	}
	switch len(found) {
	case 0:
		return blob.ID{}, fmt.Errorf("no %s matches ID %q: %w", t, prefix, ErrNoSnapshotOrFile)
	case 1:
		return found[0], nil
	}
	return blob.ID{}, fmt.Errorf("ID prefix %q is ambiguous: %d %s files match", prefix, len(found), t)
}

// ErrNoSnapshotOrFile is wrapped when an ID or prefix matches no file.
var ErrNoSnapshotOrFile = errors.New("no matching ID found")
