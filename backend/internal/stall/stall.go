// Package stall ends HTTP requests that stop making progress, so that a
// server which hangs mid-transfer turns into an error a retrying layer can
// act on instead of a command that waits forever. It is restic's
// --stuck-request-timeout: a request is given up when for the whole timeout
// no request body was sent, no answer arrived and no response body was
// read.
package stall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultTimeout is restic's default for --stuck-request-timeout. It only
// has to be longer than any pause a healthy server makes (a large upload
// being hashed before the answer, a slow disk), since progress restarts it.
const DefaultTimeout = 5 * time.Minute

// ErrStalled is wrapped by the error of a request given up for lack of
// progress. It is transient: the same request on a new connection may
// well succeed.
var ErrStalled = errors.New("request made no progress")

// chunk bounds each read, so that a large buffer handed to Read does not
// hide progress from the watchdog for longer than one chunk takes.
const chunk = 128 << 10

// RoundTripper wraps rt so that every request is cancelled once it makes
// no progress for timeout (DefaultTimeout when timeout is 0).
func RoundTripper(rt http.RoundTripper, timeout time.Duration) http.RoundTripper {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &roundTripper{rt: rt, timeout: timeout}
}

type roundTripper struct {
	rt      http.RoundTripper
	timeout time.Duration
}

// watch is the watchdog of one request: a timer that progress resets and
// whose expiry cancels the request's context.
type watch struct {
	timeout time.Duration
	cancel  context.CancelFunc

	mu      sync.Mutex
	timer   *time.Timer
	stalled bool
	done    bool
}

func (w *watch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.stalled = true
	w.cancel()
}

// kick records progress.
func (w *watch) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && !w.stalled {
		w.timer.Reset(w.timeout)
	}
}

// stop ends the watch once the request is over.
func (w *watch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.timer.Stop()
	w.cancel()
}

// explain replaces the cancellation the watchdog caused with ErrStalled,
// so that callers do not take it for their own cancellation.
func (w *watch) explain(err error) error {
	w.mu.Lock()
	stalled := w.stalled
	w.mu.Unlock()
	if err == nil || !stalled {
		return err
	}
	return fmt.Errorf("%w for %v (--stuck-request-timeout)", ErrStalled, w.timeout)
}

func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := &watch{timeout: t.timeout, cancel: cancel}
	w.mu.Lock()
	w.timer = time.AfterFunc(t.timeout, w.fire)
	w.mu.Unlock()

	req = req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &body{rc: req.Body, w: w}
	}
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		err = w.explain(err)
		w.stop()
		return nil, err
	}
	w.kick() // the answer arrived: that is progress too
	resp.Body = &body{rc: resp.Body, w: w, last: true}
	return resp, nil
}

// body passes reads through, kicking the watchdog for each; the response
// body (last) ends the watch when it is closed.
type body struct {
	rc   io.ReadCloser
	w    *watch
	last bool
}

func (b *body) Read(p []byte) (int, error) {
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		b.w.kick()
	}
	if err != nil && err != io.EOF {
		err = b.w.explain(err)
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	if b.last {
		b.w.stop()
	}
	return err
}
