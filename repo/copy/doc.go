// Package copy copies snapshots from one repository into another, with the
// semantics of `restic copy`.
//
// The two repositories have different keys, so every blob is downloaded,
// decrypted and verified, then stored again with the destination's key and
// compression settings. Blobs are copied by ID and never re-chunked: data
// only deduplicates against what the destination already holds when both
// repositories chunk with the same polynomial (see `init
// --copy-chunker-params`). Blobs the destination has already are not
// copied, so a copy that was interrupted resumes where it stopped.
//
// A copied snapshot keeps every field except Parent (meaningless in the
// other repository) and records in Original the ID of the first version of
// the snapshot, by which [Missing] recognises copies made earlier.
package copy
