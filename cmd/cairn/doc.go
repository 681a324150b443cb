// Command cairn reads and writes restic repositories. For the commands it
// shares with restic (init, backup, snapshots, ls, cat, restore, key,
// unlock, version) it takes restic's flags and environment variables,
// prints restic's text and --json output and exits with restic's codes, so
// that a script or a Kubernetes CronJob written for restic runs unchanged.
//
// Environment variables, each overridden by its flag: RESTIC_REPOSITORY
// (-r), RESTIC_REPOSITORY_FILE, RESTIC_PASSWORD (taken verbatim),
// RESTIC_PASSWORD_FILE (a BOM is dropped, UTF-16 converted, white space
// trimmed), RESTIC_PASSWORD_COMMAND (run without a shell, output trimmed),
// RESTIC_KEY_HINT, RESTIC_CACHE_DIR, RESTIC_COMPRESSION, RESTIC_PACK_SIZE,
// RESTIC_HOST (backup's --host and the default --host filter of snapshots,
// ls and restore), RESTIC_READ_CONCURRENCY, RESTIC_CACERT,
// RESTIC_TLS_CLIENT_CERT, RESTIC_PROGRESS_FPS and the RESTIC_FROM_* set of
// init --copy-chunker-params. Backends read their own (AWS_*,
// RESTIC_REST_USERNAME, RESTIC_REST_PASSWORD).
//
// Exit codes: 0 success, 1 fatal error, 3 backup saved but some source data
// unreadable, 10 no repository, 11 repository locked (the message names
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
