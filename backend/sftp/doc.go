// Package sftp stores a restic repository in a directory on an SFTP
// server, natively: golang.org/x/crypto/ssh (through internal/sshx) and
// github.com/pkg/sftp, no ssh binary. Repositories are interchangeable
// with restic's "sftp:" backend.
//
// Locations use restic's syntax (see ParseConfig): sftp:user@host:/abs,
// sftp:host:relative, sftp://user@host:port//abs. Hosts, users, ports,
// keys and known_hosts come from ~/.ssh/config, ~/.ssh/known_hosts, the
// default identities and ssh-agent, exactly as for ssh(1); the options of
// Config (restic's "-o sftp.connections=N", "-o sftp.args=…", and cairn's
// sftp.key, sftp.known-hosts, sftp.host-key, sftp.password-env) override
// them. Host keys are always verified; an unknown or changed key is an
// error that says how to check and add it.
//
// The layout is restic's: config, keys/, locks/, snapshots/, index/ and
// data/XX/ below the repository path; Create makes every directory,
// including the 256 data/XX, with mode 0700. Save writes
// "<name>-restic-temp-<random>" with O_CREATE|O_EXCL, makes it read-only
// (0400) and renames it onto the final name with posix-rename@openssh.com
// when offered, else a plain rename. A repository whose config is
// group-readable gets 0770 directories and 0440 files, like restic.
//
// Operations are spread over up to Config.Connections SSH connections,
// least loaded first, each dialled when concurrency first needs it; if
// the server refuses an extra connection, operations share the open ones.
// Large
// reads and writes keep Config.RequestsPerFile requests in flight. When a
// connection drops, the operation in progress is retried once on a new
// connection. A done context closes the connection an operation runs on,
// since an SFTP request cannot be abandoned otherwise; other operations
// on that connection then retry on a fresh one.
package sftp
