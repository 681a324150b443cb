package location

import (
	"context"
	"errors"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
)

// Local returns the scheme of local directories ("local:/srv/repo", or a
// plain path). It takes no options: cairn's local backend has a fixed
// concurrency, so restic's local.connections is refused rather than
// silently ignored.
func Local() Scheme[string] {
	return Scheme[string]{
		Name: "local",
		Parse: func(s string) (string, error) {
			dir, ok := strings.CutPrefix(s, "local:")
			if !ok {
				return "", errors.New(`local location must start with "local:"`)
			}
			if dir == "" {
				return "", errors.New("local location names no directory")
			}
			return dir, nil
		},
		Open: func(ctx context.Context, dir string) (backend.Backend, error) {
			be, err := local.Open(ctx, dir)
			if err != nil {
				return nil, err // not a typed nil inside the interface
			}
			return be, nil
		},
		Create: func(ctx context.Context, dir string) (backend.Backend, error) {
			be, err := local.Create(ctx, dir)
			if err != nil {
				return nil, err
			}
			return be, nil
		},
		// A local path holds no secret; showing it unchanged keeps an
		// "@" or "://" in a directory name intact.
		StripPassword: func(s string) string { return s },
	}
}
