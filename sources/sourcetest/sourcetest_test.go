//go:build linux

package sourcetest_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/local"
	"github.com/cairn-backup/cairn/sources/sourcetest"
)

// streamed presents the local source as a streamed one: Open works only
// during Visit, LeaveDir comes for the root only, and marker files are not
// looked at (a stream cannot peek). It lets the suite's streamed branches
// run before a real streamed source exists.
type streamed struct {
	*local.Source
}

func (s streamed) Info() sources.Info {
	info := s.Source.Info()
	info.Streamed = true
	return info
}

func (s streamed) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	if opts.Exclude != nil {
		opts.Exclude = noPeek{opts.Exclude}
	}
	return s.Source.Walk(ctx, opts, &streamVisitor{v: v})
}

// noPeek hides everything but the two plain Excluder methods, and never
// excludes by contents.
type noPeek struct{ ex sources.Excluder }

func (n noPeek) Excluded(e *sources.Entry) bool { return n.ex.Excluded(e) }
func (noPeek) ExcludedByContents(*sources.Entry, func(string, int) ([]byte, error)) bool {
	return false
}

type streamVisitor struct{ v sources.Visitor }

func (s *streamVisitor) Visit(ctx context.Context, e *sources.Entry) error {
	if e.Open == nil {
		return s.v.Visit(ctx, e)
	}
	var over atomic.Bool
	open := e.Open
	e.Open = func(ctx context.Context) (io.ReadCloser, error) {
		if over.Load() {
			return nil, errors.New("streamed: Open after Visit returned")
		}
		return open(ctx)
	}
	defer over.Store(true)
	return s.v.Visit(ctx, e)
}

func (s *streamVisitor) LeaveDir(ctx context.Context, path string) error {
	if path != "" {
		return nil
	}
	return s.v.LeaveDir(ctx, path)
}

func TestStreamedAdapter(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{
		Open: func(t *testing.T, dir string) sources.Source {
			src, err := local.New([]string{dir}, local.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return streamed{src}
		},
	})
}
