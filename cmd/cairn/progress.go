package main

import (
	"os"
	"strconv"
	"sync"
	"time"
)

// Progress update rates. On a terminal the status line is redrawn a few
// times per second; --json status lines go out once a second, terminal or
// not, so that a log collector reading a pipe is not flooded. Without a
// terminal and without --json there is no progress at all.
// RESTIC_PROGRESS_FPS overrides the rate, as in restic (at most 60).
const (
	terminalInterval = time.Second / 4
	jsonInterval     = time.Second
)

// progressInterval returns how often to report progress, 0 for never.
func progressInterval(quiet, jsonMode, canStatus bool) time.Duration {
	if quiet {
		return 0
	}
	if fps, err := strconv.ParseFloat(os.Getenv("RESTIC_PROGRESS_FPS"), 64); err == nil && fps > 0 {
		return time.Duration(float64(time.Second) / min(fps, 60))
	}
	switch {
	case jsonMode:
		return jsonInterval
	case canStatus:
		return terminalInterval
	}
	return 0
}

// updater calls fn every interval from its own goroutine until done; fn is
// called once more with final set when done is called. With interval 0 it
// only makes the final call.
type updater struct {
	fn   func(elapsed time.Duration, final bool)
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	t0   time.Time
}

func newUpdater(interval time.Duration, fn func(elapsed time.Duration, final bool)) *updater {
	u := &updater{fn: fn, stop: make(chan struct{}), t0: time.Now()}
	if interval > 0 {
		u.wg.Add(1)
		go u.run(interval)
	}
	return u
}

func (u *updater) run(interval time.Duration) {
	defer u.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-tick.C:
			u.fn(time.Since(u.t0), false)
		}
	}
}

// done stops the updates and makes the final call. It may be called more
// than once.
func (u *updater) done() {
	u.once.Do(func() {
		close(u.stop)
		u.wg.Wait()
		u.fn(time.Since(u.t0), true)
	})
}
