package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/prune"
)

// profilePrune runs the prune in this process on dir (prepared like a
// round's copy) and writes the in-use heap profile taken when the live heap
// after a collection was largest: where prune's peak memory goes.
func profilePrune(dir, out string) {
	debug.SetGCPercent(50) // as cmd/cairn
	runtime.MemProfileRate = 64 << 10
	ctx := context.Background()
	be, err := local.Open(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	r, err := repo.Open(ctx, be, password, repo.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	done := make(chan struct{})
	stopped := make(chan struct{})
	var peak uint64
	var phase atomic.Value
	phase.Store("")
	go func() {
		defer close(stopped)
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			metrics.Read(s)
			if live := s[0].Value.Uint64(); live > peak+1<<20 {
				peak = live
				f, err := os.Create(out)
				if err != nil {
					log.Fatal(err)
				}
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
				log.Printf("live heap %d MiB during %q", live>>20, phase.Load())
			}
		}
	}()
	pr := phasePrinter{phase: &phase}
	plan, err := prune.NewPlan(ctx, r, prune.Options{Printer: pr, MaxUnused: mustMaxUnused("5%")})
	if err != nil {
		log.Fatal(err)
	}
	if err := plan.Execute(ctx); err != nil {
		log.Fatal(err)
	}
	close(done)
	<-stopped
	fmt.Printf("peak live heap %d MiB; profile in %s\n", peak>>20, out)
}

func mustMaxUnused(s string) prune.MaxUnused {
	m, err := prune.ParseMaxUnused(s)
	if err != nil {
		log.Fatal(err)
	}
	return m
}

// phasePrinter remembers the last progress line as the phase.
type phasePrinter struct{ phase *atomic.Value }

func (p phasePrinter) P(format string, args ...any) { p.phase.Store(fmt.Sprintf(format, args...)) }
func (p phasePrinter) V(string, ...any)             {}
func (p phasePrinter) VV(string, ...any)            {}
func (p phasePrinter) E(format string, args ...any) { log.Printf(format, args...) }
