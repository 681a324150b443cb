package sftp

import "time"

// SetPosixRename lets tests take the plain-rename path that servers
// without the posix-rename@openssh.com extension need.
func SetPosixRename(b *Backend, on bool) { b.posixRename = on }

// SetStartTimeout changes how long dial waits for the SFTP subsystem.
func SetStartTimeout(t interface{ Cleanup(func()) }, d time.Duration) {
	old := startTimeout
	startTimeout = d
	t.Cleanup(func() { startTimeout = old })
}
