package testserver

import "syscall"

// sysProcAttr makes the kernel kill a server when the test binary dies, so
// an aborted test run leaves no servers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
