// Package sshx sets up native SSH client connections (golang.org/x/crypto/ssh)
// the way OpenSSH's ssh(1) would, for the SFTP backend and the SFTP source.
// No ssh binary is run.
//
// # Defaults, as with OpenSSH
//
// NewDialer resolves a Target against the user's ~/.ssh/config (then
// /etc/ssh/ssh_config), using the first value obtained for each keyword:
// Host patterns with "*", "?" and "!" negation, Match all/host/
// originalhost/user/localuser, Include, HostName (with %h), Port, User,
// IdentityFile (accumulated), IdentitiesOnly, IdentityAgent,
// UserKnownHostsFile, GlobalKnownHostsFile, HostKeyAlias,
// StrictHostKeyChecking, ConnectTimeout, ServerAliveInterval,
// ServerAliveCountMax and AddressFamily. Paths expand "~", ${VAR} and the
// tokens %% %d %h %i %k %L %l %n %p %r %u. ProxyJump and ProxyCommand are
// refused with an error rather than ignored, since connecting directly
// would reach a different network path than the user configured. Other
// keywords are ignored. The home directory is $HOME (so containers with
// an arbitrary UID work), falling back to the passwd entry.
//
// Authentication offers, in order: keys held by the ssh-agent at
// $SSH_AUTH_SOCK (or IdentityAgent), then the configured IdentityFiles, or
// when none are configured the default ~/.ssh/id_ed25519, id_ecdsa and
// id_rsa (each with its "-cert.pub" certificate if present), then a
// password if Options.PasswordEnv names one. Passphrase-protected key files
// are only usable through the agent; cairn never prompts.
//
// # Host keys are always verified
//
// The server's host key must be listed in the known_hosts files
// (UserKnownHostsFile, default ~/.ssh/known_hosts and known_hosts2, plus
// GlobalKnownHostsFile, default /etc/ssh/ssh_known_hosts and
// ssh_known_hosts2; hashed names, "[host]:port" entries, @cert-authority
// and @revoked markers all work) or match a pinned SHA256 fingerprint.
// An unknown host fails with an UnknownHostKeyError that prints the
// fingerprint and the ssh-keyscan command to add it; a changed key fails
// with a loud ChangedHostKeyError. StrictHostKeyChecking=no, off or
// accept-new in ssh_config is not honoured (a warning says so): nothing is
// ever trusted on first use. There is no way to switch verification off.
//
// When known_hosts lists keys for the host, their algorithms are offered
// first, so a server with several host keys presents the one the client
// knows (as OpenSSH does).
//
// # Explicit options win
//
// Options override each of the defaults for setups without a ~/.ssh, such
// as a Kubernetes pod with a key and known_hosts mounted from a Secret:
// IdentityFiles (used alone: no agent, no other files), KnownHostsFiles
// (used instead of the configured files), HostKeyFingerprints (pinned
// fingerprints replace known_hosts) and PasswordEnv (the password is read
// from that environment variable at each dial, never taken as a value).
// ConfigOverrides act like "ssh -o Keyword=value"; ApplyArgs maps the
// subset of ssh(1) arguments that restic users put in "-o sftp.args=…".
//
// # Connections
//
// Dial honours its context through the TCP connect, the key exchange and
// authentication, bounded by a connect timeout. AES-GCM ciphers are
// preferred when the CPU has AES instructions, ChaCha20-Poly1305
// otherwise. Every connection sends OpenSSH keepalives and is closed when
// the server stops answering them, so a dead peer fails pending requests
// instead of hanging them. A Dialer holds everything resolved once and can
// dial again any number of times, which is what reconnecting needs.
package sshx
