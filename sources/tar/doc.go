// Package tar is the source of `backup --stdin-tar`: a tar stream (from
// standard input, or from a command such as `ssh host tar -cf - /srv/app`)
// stored as a tree of files, one node per archive member, so that a backup
// of a tar pipeline deduplicates file by file and restores single files.
//
// # Formats
//
// Everything Go's archive/tar reads: ustar, GNU (long names and link
// targets, base-256 numbers, old and PAX sparse files, whose holes read as
// zeros) and PAX (long names, nanosecond modification, access and change
// times, owner names, extended attributes as SCHILY.xattr.*,
// LIBARCHIVE.xattr.* or RHT.security.selinux records, kept in the order
// the archive lists them). Regular files, directories, symlinks, hard
// links, character and block devices (numbers encoded like Linux's
// st_rdev) and FIFOs are stored; global PAX headers and volume labels
// hold nothing to store; unknown types are regular files, as GNU tar
// extracts them. ACL records (SCHILY.acl.*) are not converted.
//
// # Names and layout
//
// The archive's root is the snapshot's root: member "srv/app/x" (GNU tar
// strips the leading slash of /srv/app/x) is /srv/app/x in the snapshot,
// where restic's own backup of /srv/app on that host puts it. Leading
// slashes, "./" and empty or "." components are dropped; a member naming
// the root itself is skipped (a snapshot's root has no metadata). A name
// with a ".." component is never stored elsewhere: it is reported to
// WalkOptions.OnError, wrapping ErrUnsafeName, and left out. Directories
// the archive implies but does not list get mode 0755, the backing-up
// user's uid and gid and Options.Time. A member listed twice is visited
// twice; the backup keeps the later one, as extracting the archive would.
// HostPath, which exclude patterns match, is "/" + the snapshot path.
//
// Options.Paths only label the snapshot (default "/"): they are recorded,
// and a backup's parent is the latest snapshot with the same host and
// paths, so a second run of the same stream finds files whose size,
// modification time and mode are unchanged (a tar stream has no inode or
// change time to compare). Their data still crosses the stream, but is
// neither chunked nor stored again.
//
// # Hard links
//
// A stream holds a hard link's content once, under its first name. A
// visitor implementing LinkVisitor (the backup pipeline of repo/backup
// does) receives hard links through VisitLink and stores them as restic
// records hard links: the first name's content, a shared inode number and
// a link count, so that restores link them again. Any other visitor gets a
// regular file whose Open returns the first name's content, which the
// source copies to an unlinked temporary file as the walk goes (disk
// space for the archive's file data, while the walk runs). Hard links to
// symlinks, devices and FIFOs become copies of them. A hard link to
// something the archive did not store first (missing, excluded, refused)
// is reported to OnError, wrapping ErrLinkTarget.
//
// # Streams
//
// Content flows from the stream to the visitor without being buffered
// whole: a file's content is readable during its Visit only
// (Info().Streamed), and the rest of it is skipped when Visit returns. A
// malformed or truncated archive, including one that stops without its
// end-of-archive marker, fails the walk, and so the backup, with the
// member and byte offset where it broke; so does a command that fails
// (FromCommand), even when what it wrote parsed. After the marker the
// stream is read to its end, so that the command can finish.
package tar
