// Package walk visits the nodes of a snapshot's tree the way restic's
// read-only commands do (stats, find, dump): depth first, each directory's
// entries in stored order, a directory's node before its contents.
//
// Walk calls a Visitor for every node and lets it skip a subtree or the rest
// of a directory with SkipNode; a tree that cannot be loaded is reported to
// the visitor, which decides whether that is fatal. UsedBlobs collects every
// blob a set of trees references, each tree loaded once.
package walk
