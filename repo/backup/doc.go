// Package backup turns a sources.Source into a snapshot.
//
// Run walks the source once. Regular files whose metadata is unchanged since
// the parent snapshot are not read: their content list is reused (restic's
// rules: size, mtime, ctime and inode; size, mtime and mode for sources that
// have no inode or ctime). Everything else is read, cut into chunks with the
// repository's polynomial, hashed and stored once. Directory trees are
// encoded byte for byte like restic's, so trees deduplicate with restic
// backups of the same files.
//
// Work is spread over bounded worker pools: file readers (several files at
// once) and blob workers (hashing, compression and encryption of chunks, so
// that one large file still uses every core). A directory's tree is written
// as soon as its last entry is done.
package backup
