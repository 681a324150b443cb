package sftp

import "time"

// UseOwnerTable makes Open name owners from the remote /etc/passwd and
// /etc/group even when the server has the extension, for the duration of
// a test.
func UseOwnerTable(on bool) { testOwnerTable = on }

// SetStartTimeout changes how long Open waits for the SFTP subsystem, for
// the duration of a test.
func SetStartTimeout(t interface{ Cleanup(func()) }, d time.Duration) {
	old := startTimeout
	startTimeout = d
	t.Cleanup(func() { startTimeout = old })
}
