// Package repo opens, creates and works with restic-compatible repositories:
// the config and key files, the index, blobs in pack files, snapshots, trees
// and locks. A Repository sits on a backend.Backend and is safe for
// concurrent use.
//
// The backup and restore pipelines live in repo/backup and repo/restore; this
// package provides the storage operations they share.
package repo
