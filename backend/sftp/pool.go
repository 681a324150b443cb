package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/internal/sshx"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// errClosed is returned by operations on a closed backend.
var errClosed = errors.New("backend is closed")

// conn is one SSH connection with its SFTP session.
type conn struct {
	ssh  *ssh.Client
	sftp *sftp.Client

	deadOnce sync.Once
	dead     chan struct{} // closed once the connection is unusable
}

// kill closes the connection; every request in flight on it fails. The
// SSH connection goes first: closing the SFTP session alone waits for the
// server to confirm, which a hung server never does.
func (c *conn) kill() {
	c.deadOnce.Do(func() { close(c.dead) })
	_ = c.ssh.Close()
	_ = c.sftp.Close()
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// broken reports whether err means the connection is gone, so that the
// operation may be retried on a new one. Status errors from the server
// (no such file, permission denied, failure, and io.EOF, which pkg/sftp
// makes of the end-of-file status) leave the connection intact.
func (c *conn) broken(err error) bool {
	if c.isDead() {
		return true
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return false
	}
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, sftp.ErrSSHFxNoConnection) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// slot holds at most one connection. Operations pick the least loaded
// slot; a slot dials when it is first used or its connection died.
type slot struct {
	lock    chan struct{}        // serialises dialing; waiters can abandon it on ctx.Done
	conn    atomic.Pointer[conn] // replaced under lock, read without it
	load    atomic.Int32         // operations using or waiting for this slot
	retryAt atomic.Int64         // UnixNano before which a failed slot is passed over
}

// pool spreads operations over up to len(slots) connections.
type pool struct {
	dialer *sshx.Dialer
	opts   []sftp.ClientOption
	slots  []*slot
	closed atomic.Bool
	warn   func(string, ...any)
}

func newPool(d *sshx.Dialer, n uint, opts []sftp.ClientOption, warn func(string, ...any)) *pool {
	p := &pool{dialer: d, opts: opts, warn: warn}
	for range n {
		p.slots = append(p.slots, &slot{lock: make(chan struct{}, 1)})
	}
	return p
}

// redialAfter is how long a slot whose dial failed is passed over while
// other connections are up (a server limiting connections per user, for
// example, refuses the extra ones).
const redialAfter = 30 * time.Second

// acquire returns a live connection from the least loaded slot (or from
// want, if not nil), dialing one if needed. release must be called with
// the slot afterwards. If dialing an extra connection fails while others
// are up, the operation shares a live one instead.
func (p *pool) acquire(ctx context.Context, want *slot) (*slot, *conn, error) {
	if p.closed.Load() {
		return nil, nil, errClosed
	}
	best := want
	if best == nil {
		best = p.pick(time.Now())
	}
	best.load.Add(1)
	c, err := p.connect(ctx, best)
	if err == nil {
		return best, c, nil
	}
	best.load.Add(-1)
	if ctx.Err() == nil && !p.closed.Load() {
		if alt := p.pickLive(); alt != nil {
			best.retryAt.Store(time.Now().Add(redialAfter).UnixNano())
			p.warnf("sftp: an extra connection to %s failed, sharing an open one for %s: %v", p.dialer, redialAfter, err)
			alt.load.Add(1)
			if c := alt.conn.Load(); c != nil && !c.isDead() {
				return alt, c, nil
			}
			alt.load.Add(-1)
		}
	}
	return nil, nil, err
}

// pick returns the least loaded slot; among equals the lowest index, so a
// sequential user keeps reusing one connection and more are dialled only
// when operations overlap. Slots whose last dial failed recently are
// passed over while some connection is up.
func (p *pool) pick(now time.Time) *slot {
	anyLive := p.pickLive() != nil
	var best *slot
	for _, s := range p.slots {
		if anyLive && !s.live() && s.retryAt.Load() > now.UnixNano() {
			continue
		}
		if best == nil || s.load.Load() < best.load.Load() {
			best = s
		}
	}
	if best == nil {
		best = p.slots[0]
	}
	return best
}

// pickLive returns the least loaded slot with a live connection, or nil.
func (p *pool) pickLive() *slot {
	var best *slot
	for _, s := range p.slots {
		if s.live() && (best == nil || s.load.Load() < best.load.Load()) {
			best = s
		}
	}
	return best
}

func (s *slot) live() bool {
	c := s.conn.Load()
	return c != nil && !c.isDead()
}

func (p *pool) release(s *slot) { s.load.Add(-1) }

func (p *pool) warnf(format string, args ...any) {
	if p.warn != nil {
		p.warn(format, args...)
	}
}

// connect returns s's connection, replacing a dead one.
func (p *pool) connect(ctx context.Context, s *slot) (*conn, error) {
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.lock }()
	if c := s.conn.Load(); c != nil && !c.isDead() {
		return c, nil
	}
	if p.closed.Load() {
		return nil, errClosed
	}
	c, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.conn.Store(c)
	if p.closed.Load() { // Close ran while we dialled
		c.kill()
		return nil, errClosed
	}
	return c, nil
}

// startTimeout bounds the start of the SFTP subsystem on a connection that
// is already authenticated; a healthy server answers in milliseconds.
var startTimeout = time.Minute

// dial opens an SSH connection and starts the SFTP subsystem on it.
func (p *pool) dial(ctx context.Context) (*conn, error) {
	client, err := p.dialer.Dial(ctx)
	if err != nil {
		return nil, err
	}
	// Starting the subsystem has no context support either: closing the
	// SSH connection aborts it. It is also bounded on its own, because a
	// server whose subsystem never answers (a login shell stuck at start,
	// a ForceCommand) would otherwise hold a CronJob until its deadline.
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	stop := context.AfterFunc(sctx, func() { client.Close() })
	sc, err := sftp.NewClient(client, p.opts...)
	if !stop() {
		if sc != nil {
			sc.Close()
		}
		client.Close()
		if ctx.Err() == nil {
			return nil, fmt.Errorf("start SFTP on %s: the sftp subsystem did not answer within %v", p.dialer, startTimeout)
		}
		return nil, fmt.Errorf("start SFTP on %s: %w", p.dialer, ctx.Err())
	}
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("start SFTP on %s (is the sftp subsystem enabled in sshd_config?): %w", p.dialer, err)
	}
	c := &conn{ssh: client, sftp: sc, dead: make(chan struct{})}
	// Either layer failing makes the connection useless: watch both.
	go func() {
		_ = client.Wait()
		c.kill()
	}()
	go func() {
		_ = sc.Wait()
		c.kill()
	}()
	return c, nil
}

// close kills every connection; later operations fail with errClosed. It
// does not wait for a dial in progress, which kills its connection itself
// when it sees the pool closed.
func (p *pool) close() {
	p.closed.Store(true)
	for _, s := range p.slots {
		if c := s.conn.Load(); c != nil {
			c.kill()
		}
	}
}

// do runs op on a pooled connection. If the connection breaks, op runs
// once more on a freshly dialled one (the retry after a dropped
// connection); errors from the server itself are returned at once. When
// ctx is done while op runs, the connection is closed, since an SFTP
// request cannot be abandoned any other way; other operations on it then
// retry on a new connection.
func (p *pool) do(ctx context.Context, op func(c *conn, retry bool) error) error {
	var retrySlot *slot
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, c, err := p.acquire(ctx, retrySlot)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		stop := context.AfterFunc(ctx, c.kill)
		err = op(c, attempt > 0)
		stop()
		p.release(s)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case p.closed.Load():
			return fmt.Errorf("%w (%v)", errClosed, err)
		case !c.broken(err):
			return err
		case attempt >= 1:
			return fmt.Errorf("connection to %s lost again after reconnecting: %w", p.dialer, err)
		}
		// The connection is gone: make sure it is marked dead, so the
		// same slot dials a new one for the retry.
		c.kill()
		retrySlot = s
	}
}
