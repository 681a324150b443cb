//go:build !linux

package local

import (
	"context"
	"errors"

	"github.com/cairn-backup/cairn/sources"
)

// errUnsupported is what Walk returns where it is not implemented.
var errUnsupported = errors.New("local source: walking is implemented for Linux only")

// Walk fails: the walk uses Linux system calls (statx, getdents64,
// O_NOATIME) to record what restic records on Linux.
func (s *Source) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	return errUnsupported
}
