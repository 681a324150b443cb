// Package forget decides which snapshots a retention policy keeps, with
// exactly the rules of restic 0.19's `forget`: the same buckets (last,
// hourly, daily, ISO-weekly, monthly, yearly), the same keep-within windows
// measured back from the newest snapshot, the same keep-tag lists, the same
// grouping by host, paths and tags, and the same reason strings.
//
// The package only decides; it deletes nothing. A caller groups the
// snapshots with Group, applies a Policy to each group with Apply and then
// removes the snapshot files of Result.Remove itself (cairn's `forget`
// command does this under an exclusive lock).
//
// Counts and durations are parsed with ParseCount and ParseDuration, which
// accept restic's syntax ("unlimited", "1y2m3d4h") and refuse what restic
// 0.19 refuses (negative counts, negative durations).
package forget
