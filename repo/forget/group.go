package forget

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cairn-backup/cairn/repo"
)

// GroupBy says which snapshot fields form a group: restic's --group-by.
// The zero value puts all snapshots into one group.
type GroupBy struct {
	Host, Paths, Tags bool
}

// DefaultGroupBy is forget's default: per host and set of paths.
var DefaultGroupBy = GroupBy{Host: true, Paths: true}

// ParseGroupBy parses a comma-separated list of "host", "paths" and
// "tags" (singular forms accepted); "" means no grouping.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, part := range strings.Split(s, ",") {
		switch part {
		case "host", "hosts":
			g.Host = true
		case "path", "paths":
			g.Paths = true
		case "tag", "tags":
			g.Tags = true
		case "":
		default:
			return GroupBy{}, fmt.Errorf("unknown grouping option: %q", part)
		}
	}
	return g, nil
}

// String is the inverse of ParseGroupBy ("host,paths").
func (g GroupBy) String() string {
	var parts []string
	if g.Host {
		parts = append(parts, "host")
	}
	if g.Paths {
		parts = append(parts, "paths")
	}
	if g.Tags {
		parts = append(parts, "tags")
	}
	return strings.Join(parts, ",")
}

// GroupKey identifies a group: the fields grouped by, the others empty.
// Paths and Tags are sorted. Its JSON is restic's "group_key".
type GroupKey struct {
	Hostname string   `json:"hostname"`
	Paths    []string `json:"paths"`
	Tags     []string `json:"tags"`
}

// String names the group as restic does in messages
// ("host h, path [/a /b], tags [x]").
func (k GroupKey) String() string {
	var parts []string
	if k.Hostname != "" {
		parts = append(parts, "host "+k.Hostname)
	}
	if len(k.Paths) != 0 {
		parts = append(parts, fmt.Sprintf("path %v", k.Paths))
	}
	if len(k.Tags) != 0 {
		parts = append(parts, fmt.Sprintf("tags %v", k.Tags))
	}
	return strings.Join(parts, ", ")
}

// SnapshotGroup is one group of snapshots, in the order they were given.
type SnapshotGroup struct {
	Key       GroupKey
	Snapshots []*repo.Snapshot
}

// Group splits snapshots into groups by g, ordered by key (restic's order
// is random). Snapshots whose paths or tags differ only in order fall into
// the same group. The snapshots are not modified.
func Group(snapshots []*repo.Snapshot, g GroupBy) []SnapshotGroup {
	index := map[string]int{}
	var groups []SnapshotGroup
	var keys []string
	for _, sn := range snapshots {
		var k GroupKey
		if g.Host {
			k.Hostname = sn.Hostname
		}
		// Clone keeps nil and empty apart, as restic's JSON keys do.
		if g.Paths {
			k.Paths = slices.Clone(sn.Paths)
			sort.Strings(k.Paths)
		}
		if g.Tags {
			k.Tags = slices.Clone(sn.Tags)
			sort.Strings(k.Tags)
		}
		// The JSON encoding is the key, as in restic: it cannot fail for
		// strings, and invalid UTF-8 merges the same way restic's does.
		buf, _ := json.Marshal(k)
		i, ok := index[string(buf)]
		if !ok {
			i = len(groups)
			index[string(buf)] = i
			groups = append(groups, SnapshotGroup{Key: k})
			keys = append(keys, string(buf))
		}
		groups[i].Snapshots = append(groups[i].Snapshots, sn)
	}
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	out := make([]SnapshotGroup, len(groups))
	for i, j := range order {
		out[i] = groups[j]
	}
	return out
}
