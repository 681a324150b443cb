// Package backup turns a sources.Source into a snapshot.
//
// # Use
//
// Open or create a repository (repo.Open, repo.Init over a backend such as
// backend/local), make a source (sources/local for this machine's files;
// sources/sftp, sources/tar and sources/stdin for the others) and call Run:
//
//	src, err := local.New([]string{"/srv/data"}, local.Options{})
//	...
//	res, err := backup.Run(ctx, r, src, backup.Options{Hostname: "db-1"})
//	...
//	fmt.Println(res.Snapshot.ID(), res.Summary.FilesNew)
//
// Run takes a shared lock (unless Options.NoLock), finds the parent
// snapshot, writes packs and index, and saves the snapshot; the zero
// Options back up like `restic backup` with its defaults. An entry that
// cannot be read is reported through Options.Warn and counted in
// Result.Warnings, and the snapshot is still saved (restic's exit code 3);
// only repository errors and a cancelled context make Run fail. The
// repository's compression and pack size are the repo.Options it was
// opened with. The Example shows a whole backup and restore.
//
// # Compatibility
//
// Snapshots, trees and blobs are restic's, byte for byte: a restic backup
// of the same files after a cairn backup adds no data and no tree blob,
// and restic takes cairn's snapshot as its parent (and the other way
// round). Node times are rendered in Options.Location (default the local
// zone, like restic); trees only deduplicate with restic's when both use
// the same zone. The proof runs against the real restic in oracle_test.go
// and cmd/cairn/compat_test.go.
//
// # Change detection
//
// Run walks the source once. Regular files whose metadata is unchanged since
// the parent snapshot are not read: their content list is reused (restic's
// rules: size, mtime, ctime and inode; size, mtime and mode for sources that
// have no inode or ctime). Everything else is read, cut into chunks with the
// repository's polynomial, hashed and stored once. Options.Force reads
// every file again.
//
// The parent is Options.Parent, or else the latest snapshot of the same
// host and paths. Hosts that change name between runs (Kubernetes pods)
// must pass a stable Options.Hostname; when no parent is found although
// snapshots of the same paths exist under other host names,
// Result.NoParentHint says so.
//
// # Concurrency
//
// Work is spread over bounded worker pools: file readers (several files at
// once) and blob workers (hashing, compression and encryption of chunks, so
// that one large file still uses every core). A directory's tree is written
// as soon as its last entry is done.
package backup
