// Command cairn reads and writes restic repositories. For the commands it
// shares with restic (init, backup, snapshots, ls, cat, restore, forget,
// check, key, unlock, version) it takes restic's flags and environment
// variables, prints restic's text and --json output and exits with
// restic's codes, so that a script or a Kubernetes CronJob written for
// restic runs unchanged. Where cairn differs it says so in the command's
// help: init is idempotent (an existing repository that opens with the
// password is reported and exit status is 0).
//
// Beyond restic: backup takes remote sources, sftp://[user@]host[:port]/path,
// walked file by file over SSH/SFTP with nothing but sshd on the host (host
// keys verified, unknown hosts refused); and --stdin-tar, which stores the
// members of a tar stream on standard input (or of --stdin-from-command,
// such as "ssh host tar -cf - /srv") as files of their own. "cairn run
// --config FILE" is the job mode for CronJobs: pre-hooks, a backup per
// source, forget, post-hooks, a webhook notification and metrics, with one
// exit status (the first failing step's).
//
// Environment variables, each overridden by its flag: RESTIC_REPOSITORY
// (-r), RESTIC_REPOSITORY_FILE, RESTIC_PASSWORD (taken verbatim),
// RESTIC_PASSWORD_FILE (a BOM is dropped, UTF-16 converted, white space
// trimmed), RESTIC_PASSWORD_COMMAND (run without a shell, output trimmed),
// RESTIC_KEY_HINT, RESTIC_CACHE_DIR, RESTIC_COMPRESSION, RESTIC_PACK_SIZE,
// RESTIC_HOST (backup's --host and the default --host filter of snapshots,
// ls, restore and forget), RESTIC_READ_CONCURRENCY, RESTIC_CACERT,
// RESTIC_TLS_CLIENT_CERT, RESTIC_PROGRESS_FPS and the RESTIC_FROM_* set of
// init --copy-chunker-params. Backends read their own (AWS_*,
// RESTIC_REST_USERNAME, RESTIC_REST_PASSWORD).
//
// Exit codes: 0 success, 1 fatal error, 3 backup saved but some source data
// unreadable (for forget: some snapshots could not be removed; for run: a
// backup was incomplete), 10 no repository, 11 repository locked (the message names
// the holder), 12 wrong password, 130 interrupted by SIGINT or SIGTERM
// (the pipelines stop, the lock is released, the repository stays valid).
//
// Output: messages and progress go to stdout, errors to stderr. On a
// terminal a status line is redrawn a few times a second; in a pipe there
// is none, and with --json each status is one NDJSON line, once a second.
// Locations are always printed with passwords replaced by "***".
//
// The set of storage backends (local, sftp, rest, s3) is built in
// backends.go with backend/location's explicit registry.
package main
