package location_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/location"
	"github.com/cairn-backup/cairn/backend/mem"
)

// gauge is a backend whose operations take a while and that records how
// many ran at once.
type gauge struct {
	backend.Backend
	now, peak atomic.Int32
	gate      chan struct{} // when set, Save of packs blocks until it is closed
}

func (g *gauge) enter() func() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(10 * time.Millisecond)
	return func() { g.now.Add(-1) }
}

func (g *gauge) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	defer g.enter()()
	if g.gate != nil && h.Type == backend.PackFile {
		<-g.gate
	}
	return g.Backend.Save(ctx, h, rd)
}

func (g *gauge) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	defer g.enter()()
	return g.Backend.Load(ctx, h, length, offset, fn)
}

func (g *gauge) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	defer g.enter()()
	return g.Backend.Stat(ctx, h)
}

func TestLimitConnections(t *testing.T) {
	g := &gauge{Backend: mem.New()}
	be, err := location.Limit(g, location.Limits{Connections: 3})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 48)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := backendtest.Random(uint64(i), 100)
			h := backendtest.HandleFor(backend.PackFile, data)
			if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
				errs <- err
				return
			}
			if _, err := be.Stat(t.Context(), h); err != nil {
				errs <- err
			}
			if _, err := backend.LoadAll(t.Context(), be, h); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := g.peak.Load(); p != 3 {
		t.Errorf("at most %d operations ran at once, want exactly the limit of 3", p)
	}
}

func TestLimitConnectionsLocksExemptAndCancel(t *testing.T) {
	g := &gauge{Backend: mem.New(), gate: make(chan struct{})}
	be, err := location.Limit(g, location.Limits{Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	pack := backendtest.Random(1, 10)
	done := make(chan error, 1)
	go func() {
		done <- be.Save(t.Context(), backendtest.HandleFor(backend.PackFile, pack), backend.NewByteReader(pack, false))
	}()
	for g.now.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	// The one slot is taken: a lock still goes through at once ...
	lock := backendtest.Random(2, 10)
	if err := be.Save(t.Context(), backendtest.HandleFor(backend.LockFile, lock), backend.NewByteReader(lock, false)); err != nil {
		t.Fatalf("lock save while the connection is busy: %v", err)
	}
	// ... and anything else waits until its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = be.Stat(ctx, backendtest.HandleFor(backend.IndexFile, pack))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat while the only connection is busy = %v, want the deadline", err)
	}
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(t.Context(), backendtest.HandleFor(backend.PackFile, pack)); err != nil {
		t.Errorf("Stat after the slot was freed: %v", err)
	}
}
