// Package restore writes a snapshot, or one directory of it, back to a
// local directory, with the results of `restic restore` (restic 0.19.1):
// every node type (files, directories, symlinks, hard links, FIFOs, block
// and character devices), mode bits including setuid, setgid and sticky,
// ownership when running as root, modification and access times to the
// nanosecond, extended attributes, sparse files, restic's include and
// exclude patterns, its --overwrite modes, --delete, --dry-run and
// --verify.
//
// Run works in phases:
//
//  1. The snapshot's trees are loaded level by level, several at once, and
//     turned into a plan: the directories, files and other nodes to restore,
//     after filters and name checks. A node name that could leave the
//     target ("..", "a/b", "") is refused and reported, never followed.
//  2. Directories are created, parents first.
//  3. Files that already exist in the target are checked the way restic
//     does (size and mtime, then the hash of every blob) to decide what to
//     rewrite.
//  4. File content is restored pack by pack: the blobs the plan needs are
//     grouped by the pack that holds them, each needed range of each pack
//     is read once, each blob is decrypted, decompressed and hashed once,
//     and written to every (file, offset) that uses it. Several ranges are
//     in flight at once with bounded memory; a file's metadata is applied
//     through its open descriptor as soon as its last blob is written.
//  5. Symlinks, FIFOs, devices and hard links are created.
//  6. Directory metadata is applied after everything inside the directory,
//     deepest directories first (times last), after --delete has removed
//     what the snapshot does not hold.
//  7. With Verify, every restored file is read back and each blob's hash
//     checked.
//
// Damage in the repository (a missing or truncated pack, a flipped byte, a
// blob that hashes wrong, a missing tree) never stops the restore: every
// other file is restored, each affected path is listed in
// Result.Failures with the pack and blob that failed, and Run returns an
// error wrapping ErrIncomplete so that a command can exit non-zero.
//
// Differences from restic, each deliberate: names are checked for NUL
// bytes and duplicates as well; hard links are recreated for every
// non-directory node type (restic relinks only regular files, so a
// hard-linked symlink comes back as two symlinks); a file whose content
// could not be restored keeps the time of the restore as its mtime, so
// that a later `--overwrite if-changed` run does not take it for
// complete; an existing file with other hard links that needs changes is
// replaced as a whole (restic rewrites only the differing blobs into a new
// file and leaves the others as zeros); a blob missing from the index
// fails the files that need it, not the whole restore; --delete leaves a
// directory alone when its tree could not be loaded (restic would empty
// it); errors setting extended attributes are warnings, not errors; the
// index and trees are read while the repository lock settles.
//
// The package works on Linux; it builds on macOS, where times of files are
// set to the microsecond and nothing is preallocated.
package restore
