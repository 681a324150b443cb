// Package sshtest runs a real OpenSSH sshd on 127.0.0.1 for tests of the
// SFTP backend, the SFTP source and the SSH dialer.
//
// Start launches the Debian openssh-server binary in the foreground
// (`sshd -D -e -f <config>`) on a free loopback port, as the user running
// the test, with throwaway host and user keys generated in Go into
// t.TempDir (mode 0600) and the internal-sftp subsystem. The returned
// Server names everything a client needs: address, user, the user's
// private key, a known_hosts file for the server and its host key
// fingerprint. DropConnections kills the per-connection sshd processes
// while the listener keeps running, so tests can prove that clients
// reconnect.
//
// It works as root (sshd then needs the privilege separation directory
// /run/sshd, which Start creates, and the "sshd" account the package
// installs) and as an unprivileged user (sshd then runs without privilege
// separation and can only log in that same user). StrictModes is off
// because test directories live below world-writable /tmp.
//
// When sshd is not installed (`apt-get install -y --no-install-recommends
// openssh-server`, listed in scripts/apt-packages.txt) the test fails under
// CI=true and is skipped elsewhere (testtools.Unavailable). StartAgent does
// the same for ssh-agent from openssh-client.
//
// Process inspection uses /proc, so the package works on Linux only.
package sshtest
