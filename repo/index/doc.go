// Package index reads and writes restic index files and keeps the
// repository's in-memory index: for every blob (type + ID) the pack(s) that
// hold it, with offset and lengths.
//
// The in-memory index is sized for millions of blobs: entries live in
// fixed-size blocks (about 56 bytes per blob including the hash buckets), not
// in a Go map of structs, so memory stays proportional to the number of blobs.
package index
