package sourcetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/sources"
)

// event is one Visitor call.
type event struct {
	leave bool   // LeaveDir rather than Visit
	path  string // entry or directory path
}

// recorder is a Visitor that keeps a deep copy of everything it is given.
type recorder struct {
	streamed bool // read content during Visit, as streamed sources require

	mu      sync.Mutex
	events  []event
	entries map[string]*sources.Entry
	dupes   []string            // paths visited more than once
	hashes  map[string][32]byte // content read during Visit (streamed)
	readErr map[string]error    // content errors during Visit (streamed)

	// onVisit, when set, runs at the start of each Visit; its error stops
	// the walk.
	onVisit func(ctx context.Context, e *sources.Entry) error
	// onError records OnError calls when used as WalkOptions.OnError.
	errs []reported
	// errResult is what onErrorFunc returns.
	errResult error
}

// reported is one OnError call.
type reported struct {
	path string
	err  error
}

func newRecorder(streamed bool) *recorder {
	return &recorder{
		streamed: streamed,
		entries:  map[string]*sources.Entry{},
		hashes:   map[string][32]byte{},
		readErr:  map[string]error{},
	}
}

func (r *recorder) Visit(ctx context.Context, e *sources.Entry) error {
	if r.onVisit != nil {
		if err := r.onVisit(ctx, e); err != nil {
			return err
		}
	}
	cp := *e
	cp.Xattrs = slices.Clone(e.Xattrs)
	for i := range cp.Xattrs {
		cp.Xattrs[i].Value = slices.Clone(e.Xattrs[i].Value)
	}
	var sum [32]byte
	var readErr error
	if r.streamed && e.Type == sources.File && e.Open != nil {
		sum, readErr = hashOpen(ctx, e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{path: e.Path})
	if _, dup := r.entries[e.Path]; dup {
		r.dupes = append(r.dupes, e.Path)
	}
	r.entries[e.Path] = &cp
	if r.streamed && e.Type == sources.File {
		r.hashes[e.Path], r.readErr[e.Path] = sum, readErr
	}
	return nil
}

func (r *recorder) LeaveDir(ctx context.Context, path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{leave: true, path: path})
	return nil
}

// onErrorFunc is a WalkOptions.OnError that records and returns errResult.
func (r *recorder) onErrorFunc(path string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, reported{path, err})
	return r.errResult
}

// errorFor returns the first error reported for a host path ending in
// suffix.
func (r *recorder) errorFor(suffix string) (reported, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		if len(e.path) >= len(suffix) && e.path[len(e.path)-len(suffix):] == suffix {
			return e, true
		}
	}
	return reported{}, false
}

// hashOpen reads an entry's content through Open.
func hashOpen(ctx context.Context, e *sources.Entry) ([32]byte, error) {
	var sum [32]byte
	if e.Open == nil {
		return sum, errors.New("regular file without Open")
	}
	rc, err := e.Open(ctx)
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	_, err = io.Copy(h, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sum, fmt.Errorf("read %s: %w", e.Path, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// walk runs one walk with the recorder, failing the test on a walk error
// unless wantErr.
func (r *recorder) walk(t *testing.T, f *fixture, opts sources.WalkOptions) error {
	t.Helper()
	if opts.OnError == nil {
		opts.OnError = r.onErrorFunc
	}
	return f.src.Walk(t.Context(), opts, r)
}

// mustWalk is walk for walks that must succeed without reported errors.
func (r *recorder) mustWalk(t *testing.T, f *fixture, opts sources.WalkOptions) {
	t.Helper()
	if err := r.walk(t, f, opts); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	for _, e := range r.errs {
		t.Errorf("OnError(%q, %v) on a walk that should be clean", e.path, e.err)
	}
	for _, p := range r.dupes {
		t.Errorf("%q visited more than once", p)
	}
}
