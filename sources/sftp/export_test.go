package sftp

// UseOwnerTable makes Open name owners from the remote /etc/passwd and
// /etc/group even when the server has the extension, for the duration of
// a test.
func UseOwnerTable(on bool) { testOwnerTable = on }
