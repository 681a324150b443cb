// Package stdin is the source of `backup --stdin` and
// `backup --stdin-from-command`: one stream (standard input, or the
// standard output of a command) stored as a single file, the way restic
// stores it, so that both tools make the same snapshot of a database dump.
//
// The file is a synthetic node: mode 0644, modification, access and change
// time all equal to the snapshot time, the numeric uid and gid of the
// backing-up process and no user or group name, inode, link count or
// device. The snapshot's paths are ["/<filename>"]; a filename with slashes
// ("db/dump.sql") gets directories of mode 0755 with the same times, as
// restic makes them.
//
// A stream that yields no data at all is reported as a read error (restic's
// "no data read"): the backup records the problem and exits with status 3
// instead of storing an empty file silently.
//
// FromCommand runs a command with its arguments passed as they are, never
// through a shell, and fails the walk, and with it the whole backup, when
// the command exits with an error, as restic 0.17+ does. Its standard error
// is handed line by line to a callback. Cancelling the walk's context kills
// the command.
package stdin
