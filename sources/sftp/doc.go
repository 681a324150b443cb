// Package sftp is the remote source: it backs up directories of a host
// that runs nothing but sshd, file by file, over one SSH connection with
// the SFTP protocol (github.com/pkg/sftp).
//
// # Naming remote paths
//
// A remote source is a URL, sftp://[user@]host[:port]/absolute/path
// (ParseURL). The path is absolute on the remote host; several paths of
// the same user@host:port belong in one snapshot (Config.Paths). The
// snapshot's host name is the host as written (an ~/.ssh/config alias
// stays the alias) unless Config.Hostname says otherwise, and its paths
// are the remote paths, so `restic snapshots --host kvm1` and
// `restic forget --group-by host,paths` treat these snapshots like ones
// restic took on that host.
//
// Connecting, authenticating and checking host keys work exactly as for
// the SFTP backend (both use internal/sshx): ~/.ssh/config, known_hosts,
// identity files and the agent by default; Config.Key, KnownHosts,
// HostKey, PasswordEnv and Args (the backend's sftp.key, sftp.known-hosts,
// sftp.host-key, sftp.password-env and sftp.args options) replace them, for
// example with a key and known_hosts mounted from a Kubernetes Secret. An
// unknown or changed host key is refused; nothing is trusted on first use.
//
// # What SFTP carries
//
// SFTP version 3, which OpenSSH speaks, carries per entry: the type and
// mode (permission bits, setuid, setgid, sticky), size, modification and
// access times in whole seconds (unsigned 32-bit, so times before 1970 or
// after 2106 arrive wrapped), numeric owner and group, and symlink targets
// (READLINK). User and group names come from OpenSSH's
// users-groups-by-id@openssh.com extension (sftp-server 9.1 and later),
// which asks the server's own user database, NSS included. Without it
// (OpenSSH before 9.1, other servers) names come from the remote
// /etc/passwd and /etc/group, which know local accounts but not those of a
// directory service; where those files cannot be read (a chrooted SFTP
// account), owners stay numeric. There are no inode numbers, no change times,
// no link counts, no device numbers and no extended attributes: hard links
// are stored as separate files, and device nodes are left out (a node with
// an unknown device number would restore as the wrong device). FIFOs and
// sockets are reported like the local source reports them.
//
// OpenSSH's sftp-server silently drops the names it cannot lstat, so the
// entries of a directory that may be read but not searched are invisible;
// the walk reports such a directory (it lists as empty) with an error
// wrapping fs.ErrPermission instead of its entries.
//
// # Incremental backups: the change rule
//
// Without inode or change time, the backup pipeline (repo/backup) treats a
// file as unchanged when its size, its modification time (whole seconds)
// and its mode equal those in the parent snapshot; such a file is not
// opened, and its content is taken from the parent. Info.Has declares
// neither sources.HasInode nor sources.HasChangeTime, which is how the
// pipeline picks this rule. A change that keeps size, mtime and mode
// (a rewrite within the same second followed by a touch back, or `touch
// -r`) is missed, as it would be by restic with --ignore-inode
// --ignore-ctime; `backup --force` reads everything again.
//
// # Reading
//
// Directories are listed by a few goroutines ahead of the walk, each
// listing one READDIR stream plus concurrent READLINKs for its symlinks.
// A file is read in blocks of 256 KiB, each split by pkg/sftp into 32 KiB
// requests sent at once, with RequestsPerFile requests in flight per file
// (2 MiB by default); the backup pipeline reads several files at once
// (eight for sources without inodes). A file is read until the server says
// it ends, so a file that grew or shrank since it was listed is stored as
// it was read. Files are opened by name: a file replaced between listing
// and reading is read as it is then, and a file deleted meanwhile is
// reported wrapping sources.ErrVanished.
package sftp
