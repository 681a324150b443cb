package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// Options tune the retries. The zero value means restic's defaults, each
// given with its field.
type Options struct {
	// InitialDelay is the wait before the first retry (default 1s).
	InitialDelay time.Duration
	// MaxDelay caps a single wait (default 60s), so a long outage is
	// probed at least once a minute.
	MaxDelay time.Duration
	// MaxElapsed bounds the time one operation may take, attempts and
	// waits together (default 15 minutes): long enough to ride out a
	// server restart or a network hiccup, short enough that a backup
	// against a dead server ends on its own.
	MaxElapsed time.Duration
	// MaxAttempts bounds the attempts of one operation, the first one
	// included (default 20, which the default delays reach only after
	// about 14 minutes).
	MaxAttempts int
	// Report, when set, is told about every retry, every give-up after a
	// retry and every success after retries. It may be called from
	// several goroutines at once.
	Report func(Event)
	// RetryUnreachable retries a server that could not be reached (no
	// such host, connection refused) before it ever answered, as restic
	// does. By default such an error is returned at once: a wrong host or
	// port is far likelier than an outage that begins exactly when the
	// backend is first used, and a command should say so instead of
	// waiting 15 minutes. Once the server has answered, losing it counts
	// as transient either way.
	RetryUnreachable bool
}

// The defaults of Options.
const (
	DefaultInitialDelay = time.Second
	DefaultMaxDelay     = time.Minute
	DefaultMaxElapsed   = 15 * time.Minute
	DefaultMaxAttempts  = 20
)

// jitter is the relative spread of each wait: a wait of d becomes a random
// value in [d*(1-jitter), d*(1+jitter)], so that many clients (or many
// goroutines of one client) that failed together do not retry in lockstep.
const jitter = 0.5

func (o Options) withDefaults() Options {
	if o.InitialDelay <= 0 {
		o.InitialDelay = DefaultInitialDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxDelay < o.InitialDelay {
		o.MaxDelay = o.InitialDelay
	}
	if o.MaxElapsed <= 0 {
		o.MaxElapsed = DefaultMaxElapsed
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	return o
}

// Event is one notice for Options.Report.
type Event struct {
	// Op names the operation the way restic does: "Save(<data/0123456789>)",
	// "Load(<index/0123456789>, 0, 0)", "List(data)".
	Op string
	// Attempt is the number of the attempt that just ended, from 1.
	Attempt int
	// Err is the error of that attempt; nil when it succeeded.
	Err error
	// Wait is the pause before the next attempt; 0 when there is none.
	Wait time.Duration
	// GaveUp is set on the last notice of an operation that failed.
	GaveUp bool
}

// String returns restic's message for the event.
func (e Event) String() string {
	switch {
	case e.Err == nil:
		return fmt.Sprintf("%s operation successful after %d retries", e.Op, e.Attempt-1)
	case e.GaveUp:
		return fmt.Sprintf("%s failed: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s returned error, retrying after %v: %v", e.Op, e.Wait, e.Err)
}

// retrier runs one operation with the options' policy.
type retrier struct {
	opts Options
	// answered is set once the backend has answered anything, an error
	// included; before that an unreachable server is not retried.
	answered atomic.Bool
}

// unreachable reports whether err says the server was not reached at all:
// a failed dial or name lookup, as opposed to a connection that broke.
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// attemptFunc is one try. It returns the error and whether that error is
// final no matter what backend.IsPermanent says (a consumer's verdict).
type attemptFunc func() (err error, final bool)

// do runs try until it succeeds, fails permanently, exhausts the attempts
// or the time, or ctx ends. The end of ctx is returned as its cause
// (context.Cause), without any report: the caller asked for it.
func (r *retrier) do(ctx context.Context, op func() string, try attemptFunc) error {
	// An operation never starts with a dead context: nothing may change
	// the repository after the caller gave up, even in backends that
	// would not notice the context before writing.
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	start := time.Now()
	delay := r.opts.InitialDelay
	for attempt := 1; ; attempt++ {
		err, final := try()
		if err == nil || !unreachable(err) {
			r.answered.Store(true)
		} else if !r.opts.RetryUnreachable && !r.answered.Load() {
			final = true
		}
		if err == nil {
			if attempt > 1 {
				r.report(Event{Op: op(), Attempt: attempt})
			}
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if final || backend.IsPermanent(err) {
			if attempt > 1 {
				r.report(Event{Op: op(), Attempt: attempt, Err: err, GaveUp: true})
			}
			return err
		}
		wait := min(spread(delay), r.opts.MaxDelay)
		if attempt >= r.opts.MaxAttempts || time.Since(start)+wait > r.opts.MaxElapsed {
			r.report(Event{Op: op(), Attempt: attempt, Err: err, GaveUp: true})
			return fmt.Errorf("%w (gave up after %d attempts in %v)", err, attempt, time.Since(start).Round(time.Millisecond))
		}
		r.report(Event{Op: op(), Attempt: attempt, Err: err, Wait: wait})
		if !sleep(ctx, wait) {
			return fmt.Errorf("%w while waiting to retry after: %w", context.Cause(ctx), err)
		}
		delay = min(2*delay, r.opts.MaxDelay)
	}
}

func (r *retrier) report(e Event) {
	if r.opts.Report != nil {
		r.opts.Report(e)
	}
}

// spread applies the jitter to d and rounds the result so that the
// reported wait is the one taken and reads well ("1.2s", "350ms").
func spread(d time.Duration) time.Duration {
	f := 1 - jitter + 2*jitter*rand.Float64()
	w := time.Duration(float64(d) * f)
	if w >= time.Second {
		return w.Round(100 * time.Millisecond)
	}
	return max(w.Round(time.Millisecond), time.Millisecond)
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
