// Package tree holds restic's directory listing: the [Node] that describes one
// file, directory or other entry, and the tree blob that lists the nodes of one
// directory.
//
// A tree blob is named by the SHA-256 of its exact bytes, so this package
// encodes nodes byte for byte the way restic 0.19.1 does (Go encoding/json
// output of restic's node struct, with names run through strconv.Quote first).
// Any difference would stop deduplication between cairn and restic and make
// `restic rewrite` refuse the tree.
//
// Writing: a [Builder] appends nodes in strictly increasing name order and
// returns the finished blob; [Encode] does the same for a slice of nodes.
// Reading: [Decode] parses a blob into a [Tree], whose [Tree.Find] looks nodes up
// by name. Both directions have a hand-written fast path for the canonical form
// restic writes; decoding falls back to encoding/json, with restic's own rules,
// for anything unusual, so both paths accept and reject exactly the same input.
//
// In memory a node keeps raw bytes: [Node.Name] and [Node.LinkTarget] are the
// names as the file system returned them, possibly invalid UTF-8; the quoting
// of names and the linktarget_raw field exist only in the encoded form.
package tree
