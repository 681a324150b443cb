//go:build unix

package backend

import "syscall"

// platformPermanent adds the quota error, which not every platform defines.
var platformPermanent = []error{syscall.EDQUOT}
