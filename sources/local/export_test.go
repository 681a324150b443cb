//go:build linux

package local

// SetTestHooks installs the hooks that run after a directory was listed
// and after an entry was lstat()ed; the returned function removes them.
func SetTestHooks(listed, statted func(path string)) (restore func()) {
	testHookListed, testHookStatted = listed, statted
	return func() { testHookListed, testHookStatted = nil, nil }
}
