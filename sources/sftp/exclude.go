package sftp

import (
	"sync"

	"github.com/cairn-backup/cairn/sources"
)

// Optional Excluder methods, as sources/filter.Filter provides them,
// declared here by their consumer (as in sources/local). An Excluder
// without them still works through the sources.Excluder methods alone.
type (
	// twoPhaseExcluder splits Excluded so that entries excluded by name
	// cost no symlink lookup, as in restic.
	twoPhaseExcluder interface {
		ExcludedByName(hostPath string) bool
		ExcludedByMetadata(e *sources.Entry) bool
	}
	// contentsExcluder keeps a directory whose contents a marker file
	// excludes, together with the marker itself, as restic does.
	contentsExcluder interface {
		ExcludedContents(dir *sources.Entry, peek func(name string, n int) ([]byte, error)) (excluded bool, keep []string)
	}
	// markerChecker lets the walk skip the marker check per directory
	// when there are no marker rules.
	markerChecker interface {
		HasMarkers() bool
	}
)

// excluder wraps the walk's Excluder. Directory listings run on several
// goroutines and sources.Excluder promises nothing about concurrency, so
// every call is made under one lock.
type excluder struct {
	mu       sync.Mutex
	ex       sources.Excluder // nil: nothing is excluded
	twoPhase twoPhaseExcluder
	markerEx contentsExcluder
	markers  bool
}

func newExcluder(ex sources.Excluder) *excluder {
	x := &excluder{ex: ex, markers: ex != nil}
	if ex == nil {
		return x
	}
	x.twoPhase, _ = ex.(twoPhaseExcluder)
	x.markerEx, _ = ex.(contentsExcluder)
	if m, ok := ex.(markerChecker); ok {
		x.markers = m.HasMarkers()
	}
	return x
}

// byName applies the rules that need only the path.
func (x *excluder) byName(hostPath string) bool {
	if x.twoPhase == nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.twoPhase.ExcludedByName(hostPath)
}

// byMetadata applies the rest (everything, for a plain Excluder) once the
// entry is filled in.
func (x *excluder) byMetadata(e *sources.Entry) bool {
	if x.ex == nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.twoPhase != nil {
		return x.twoPhase.ExcludedByMetadata(e)
	}
	return x.ex.Excluded(e)
}

// contents applies the marker rules to a listed directory: skipAll leaves
// it out entirely (a plain Excluder), marked keeps it with only the
// children named in keep.
func (x *excluder) contents(dir *sources.Entry, peek func(string, int) ([]byte, error)) (skipAll, marked bool, keep []string) {
	if !x.markers {
		return false, false, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.markerEx != nil {
		marked, keep = x.markerEx.ExcludedContents(dir, peek)
		return false, marked, keep
	}
	return x.ex.ExcludedByContents(dir, peek), false, nil
}
