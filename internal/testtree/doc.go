// Package testtree builds the fixture directory tree that the tests of the
// whole project back up and restore: every awkward thing a file system can
// hold (odd names, links of all kinds, device nodes, special mode bits,
// foreign owners, extreme and sub-second times, extended attributes, sparse
// and multi-chunk files, deep and wide directories), and compares two trees
// so that a restore can be checked against the original.
//
// Build is deterministic for a given Options.Seed: names, content, modes and
// times are always the same; only what the file system chooses (inode
// numbers, ctime) differs between builds, and the Manifest records it as
// observed. Features that need privileges (device nodes, foreign owners) or
// file-system support (user.* xattrs, holes) are created when possible and
// reported in Manifest.Features; with CI=true a missing feature makes Build
// fail instead of quietly shrinking the fixture (so CI runs as root).
//
// The package is Linux-only, like the local source it mainly serves.
package testtree
