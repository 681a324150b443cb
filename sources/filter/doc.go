// Package filter implements restic's exclude options for sources: the
// --exclude and --iexclude pattern language (filepath.Match components,
// "**", "!" negation, patterns anchored with a leading "/" or matching any
// run of path components), --exclude-file and --iexclude-file, marker files
// (--exclude-if-present, --exclude-caches) and --exclude-larger-than, with
// the same results as restic 0.19.1 down to its corner cases. It also reads
// the target lists of --files-from, --files-from-verbatim and
// --files-from-raw.
//
// A Filter is a sources.Excluder. Beyond that interface it offers
// ExcludedByName and ExcludedByMetadata, so a source can drop entries
// before stat'ing them as restic does, and ExcludedContents, which says
// which marker files stay in a directory whose contents are excluded
// (restic keeps them).
//
// Patterns match the entry's host path. Like restic, excludes never apply
// to the targets themselves, only to what lies below them; that rule
// belongs to the source, which knows what its targets are.
package filter
