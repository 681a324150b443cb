// Package prune removes data that no snapshot references any more, with the
// decisions and the safety of restic 0.19's prune.
//
// NewPlan walks every snapshot's trees to find the blobs still in use,
// classifies each pack of the index (fully used, partly used, unused, tree or
// data, compressed or not, small) and decides which packs to repack and
// which to delete by restic's rules: --max-unused, --max-repack-size,
// --repack-cacheable-only, --repack-smaller-than, --repack-uncompressed and
// duplicate blobs. It refuses, as restic does, when a used blob is missing
// from the index or a needed pack is missing or has the wrong size.
//
// Plan.Execute then changes the repository in an order that keeps it valid
// if the process dies at any point: packs that no index lists are deleted
// first; the used blobs of the packs to repack are copied into new packs
// (with their index files); a new full index without the packs to delete
// replaces every old index file; only then are the packs deleted.
//
// The caller must hold the repository's exclusive lock for both steps.
// Memory is bounded by the index: the plan keeps a set of used blob handles
// and per-pack counters, never blob data beyond the blob being copied.
package prune
