// Package sourcetest is the conformance suite every sources.Source runs:
// the local file-system source, the SFTP walker and the tar stream alike.
// Run builds the fixture of package internal/testtree (odd names, links,
// devices, modes, owners, times, xattrs, sparse and large files, deep and
// wide directories) afresh for each subtest, opens the source on it
// through a Harness and checks, within what the source's Info says it can
// represent:
//
//   - Entries: the visited paths and types equal the fixture, and the
//     directories above the target are visited as directories;
//   - Order: parents before children; for non-streamed sources, children
//     sorted by raw name bytes and exactly one LeaveDir per directory after
//     everything below it; LeaveDir("") once, last;
//   - Metadata: modes, times, owners and names, inodes, links, devices,
//     symlink targets and user.* xattrs in listxattr order;
//   - Content: what Open returns equals the files, read concurrently after
//     the walk for non-streamed sources, during Visit for streams;
//   - WalkTwice: two walks of an unchanged tree are identical;
//   - Excludes: patterns, marker files and size limits from sources/filter,
//     with restic's results (a marked directory keeps only its marker);
//   - Unreadable: OnError is called with an fs.ErrPermission error and the
//     walk goes on, or stops with the error OnError returns; as root the
//     case runs in a child process as uid 65534, so the permissions are
//     real;
//   - Vanished: a file deleted during the walk is reported with
//     sources.ErrVanished (by OnError or by Open);
//   - Cancel: cancelling the context stops the walk at once with its
//     error.
package sourcetest
