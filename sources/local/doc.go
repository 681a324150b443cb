// Package local is the local file-system source: it walks files and
// directories on this machine and reports them, with everything restic
// records on Linux, to a backup.
//
// The snapshot layout is restic's: targets are made absolute for the
// snapshot's paths, an absolute target /srv/app appears as srv/app with
// srv carrying the real directory's metadata, "." and "/" put their
// entries at the snapshot root, same-named targets from different places
// become name, name-1, …, and excludes never apply to the targets
// themselves. Entries carry nanosecond times (modification, access,
// change), inode, device, link count, device numbers, owners with cached
// user and group names, raw symlink targets and extended attributes in
// listxattr order; sockets are reported as sources.Socket for the backup
// to skip.
//
// The walk stays close to the cost of a bare lstat walk: directories are
// listed and entries lstat()ed by a few worker goroutines ahead of the
// visitor, in the visitor's order of need, with system calls made on
// prepared buffers. The visit order itself is fixed (depth first, names
// sorted by raw bytes), so two walks of the same tree are identical.
//
// Walking is implemented for Linux only; elsewhere Walk fails.
package local
