package sftp

// SetPosixRename lets tests take the plain-rename path that servers
// without the posix-rename@openssh.com extension need.
func SetPosixRename(b *Backend, on bool) { b.posixRename = on }
