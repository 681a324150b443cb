// Package exclude is the walk-side view of a sources.Excluder shared by the
// sources that walk a tree themselves (sources/local, sources/sftp): it
// finds the optional methods sources/filter.Filter provides and serialises
// every call, so a walk may consult one Excluder from several goroutines.
package exclude

import (
	"sync"

	"github.com/cairn-backup/cairn/sources"
)

// Optional Excluder methods, as sources/filter.Filter provides them. They
// are declared here, by their consumer; an Excluder without them still
// works through the sources.Excluder methods alone.
type (
	// twoPhaseExcluder splits Excluded so that entries excluded by name
	// are never stat'ed, as in restic (no system call, no error for them).
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

// Guard wraps a walk's Excluder. Walkers consult it from several
// goroutines, and sources.Excluder promises nothing about concurrency, so
// every call is made under one lock.
type Guard struct {
	mu       sync.Mutex
	ex       sources.Excluder // nil: nothing is excluded
	twoPhase twoPhaseExcluder
	markerEx contentsExcluder
	markers  bool
}

// New returns the Guard for ex; a nil ex excludes nothing.
func New(ex sources.Excluder) *Guard {
	g := &Guard{ex: ex, markers: ex != nil}
	if ex == nil {
		return g
	}
	g.twoPhase, _ = ex.(twoPhaseExcluder)
	g.markerEx, _ = ex.(contentsExcluder)
	if m, ok := ex.(markerChecker); ok {
		g.markers = m.HasMarkers()
	}
	return g
}

// ByName applies the rules that need only the path, before any lstat.
func (g *Guard) ByName(hostPath string) bool {
	if g.twoPhase == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.twoPhase.ExcludedByName(hostPath)
}

// ByMetadata applies the rest (everything, for a plain Excluder) once the
// entry is filled in. Sources may leave out costly attributes such as
// extended attributes until an entry is known to stay.
func (g *Guard) ByMetadata(e *sources.Entry) bool {
	if g.ex == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.twoPhase != nil {
		return g.twoPhase.ExcludedByMetadata(e)
	}
	return g.ex.Excluded(e)
}

// HasMarkers reports whether any marker rule may exclude a directory's
// contents, so a walk can skip reading a directory only for them.
func (g *Guard) HasMarkers() bool { return g.markers }

// Contents applies the marker rules to a directory about to be walked:
// skipAll leaves it out entirely (a plain Excluder), marked keeps it with
// only the children named in keep.
func (g *Guard) Contents(dir *sources.Entry, peek func(string, int) ([]byte, error)) (skipAll, marked bool, keep []string) {
	if !g.markers {
		return false, false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.markerEx != nil {
		marked, keep = g.markerEx.ExcludedContents(dir, peek)
		return false, marked, keep
	}
	return g.ex.ExcludedByContents(dir, peek), false, nil
}
