package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Lock is the content of a lock file. Time, exclusivity and who holds it;
// the hostname is the OS host name (not a backup's --host), so that stale
// detection can probe the PID on the same machine.
type Lock struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	Username  string    `json:"username"`
	PID       int       `json:"pid"`
	UID       uint32    `json:"uid,omitempty"`
	GID       uint32    `json:"gid,omitempty"`
	// PIDNamespace names the process space PID belongs to: the kernel's
	// boot ID and the PID namespace (Linux). A host name does not: two
	// containers may share one and still number their processes apart,
	// so that a live holder's PID is absent from the other's view. cairn
	// writes it; restic ignores it and leaves it empty.
	PIDNamespace string `json:"cairn_pid_namespace,omitempty"`

	id blob.ID
}

// ID is the lock file's ID.
func (l *Lock) ID() blob.ID { return l.id }

func (l *Lock) String() string {
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock %s held by PID %d on %s by %s (UID %d, GID %d), created %s (%s ago)",
		kind, l.id.Str(), l.PID, l.Hostname, l.Username, l.UID, l.GID,
		l.Time.Format("2006-01-02 15:04:05"), time.Since(l.Time).Round(time.Second))
}

// StaleLockTimeout is the age after which a lock that was not refreshed is
// stale, for every client.
const StaleLockTimeout = 30 * time.Minute

// Stale reports whether the lock's holder is gone by restic's rule: it was
// not refreshed for 30 minutes (a live holder refreshes every 5), or it was
// made on this host by a process that no longer exists. The PID is probed
// only where it means the same process: for a lock that names its PID
// namespace, in that namespace; for one that does not (restic's), on a host
// of the same name. `unlock` removes these locks.
func (l *Lock) Stale() bool {
	if l.holderGone() {
		return true
	}
	if l.PIDNamespace != "" {
		return false // another namespace's PID says nothing here
	}
	hn, err := os.Hostname()
	if err != nil || hn != l.Hostname {
		return false
	}
	return !processExists(l.PID)
}

// holderGone reports whether the lock's holder is certainly gone, which is
// when Lock removes the lock on its own (unlike restic, where it blocks
// until `unlock`: a command killed with SIGKILL, or a CronJob pod that was
// OOM-killed, must not block the next run for ever). That is Stale without
// its guess: a lock that does not name its PID namespace goes only by age,
// since a container that shares our host name but not our PID namespace
// may hold it, alive, under a PID that is free here.
func (l *Lock) holderGone() bool {
	if time.Since(l.Time) > StaleLockTimeout {
		return true
	}
	ns := pidNamespace()
	return ns != "" && l.PIDNamespace == ns && !processExists(l.PID)
}

// pidNamespace names this process's PID namespace on this boot of this
// kernel: "<boot ID>/pid:[<inode>]". Namespace inodes are only unique
// within one boot, and the initial namespace has the same one on every
// machine, hence the boot ID. It is empty where /proc does not tell (not
// Linux, or /proc not mounted), and then no PID is trusted.
var pidNamespace = sync.OnceValue(func() string {
	raw, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	boot := strings.TrimSpace(string(raw))
	if err != nil || boot == "" {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return boot + "/" + ns
})

func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// LockedError reports a conflicting lock held by someone else.
type LockedError struct {
	Lock *Lock
}

func (e *LockedError) Error() string {
	how := ""
	if e.Lock.Exclusive {
		how = "exclusively "
	}
	return fmt.Sprintf("repository is already locked %sby %v", how, e.Lock)
}

// LockOptions tune locking. The zero value means restic's behaviour.
type LockOptions struct {
	// RetryLock keeps retrying a conflicting lock for this long (restic's
	// --retry-lock), with backoff from 5 s doubling to 60 s.
	RetryLock time.Duration
	// RefreshInterval is how often a held lock is rewritten (default 5 min).
	RefreshInterval time.Duration
	// settle is how long to wait after writing a lock before checking again
	// for a competing one (200 ms; shorter in tests).
	settle time.Duration
	// invalidRetry is the first delay before re-listing when a lock file
	// could not be read (5 s, doubling, 3 retries).
	invalidRetry time.Duration
	// StaleRemoved, when set, is called for every lock Lock removed
	// because its holder is gone (so that the command can say so).
	StaleRemoved func(*Lock)
}

func (o LockOptions) withDefaults() LockOptions {
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 5 * time.Minute
	}
	if o.settle == 0 {
		o.settle = 200 * time.Millisecond
	}
	if o.invalidRetry == 0 {
		o.invalidRetry = 5 * time.Second
	}
	return o
}

// HeldLock is a lock this process holds. It is refreshed in the background
// until Unlock.
type HeldLock struct {
	r      *Repository
	mu     sync.Mutex
	lock   *Lock
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
}

// ErrLockLost is the cause of the context returned by Lock when the lock
// could not be refreshed and was removed by someone else.
var ErrLockLost = errors.New("repository lock was lost (removed by another process while not refreshed)")

// Lock acquires a shared or exclusive lock. The returned context is derived
// from ctx and cancelled (with ErrLockLost as its cause) if the lock is lost;
// run the locked operation with it. A conflict returns a *LockedError.
func (r *Repository) Lock(ctx context.Context, exclusive bool, opts LockOptions) (context.Context, *HeldLock, error) {
	opts = opts.withDefaults()
	l := newLock(exclusive)
	deadline := time.Now().Add(opts.RetryLock)
	backoff := 5 * time.Second
	for {
		err := r.tryLock(ctx, l, opts)
		if err == nil {
			break
		}
		var le *LockedError
		if !errors.As(err, &le) || time.Now().After(deadline) {
			return nil, nil, err
		}
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 {
			return nil, nil, err
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, nil, err
		}
		backoff = min(2*backoff, time.Minute)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	h := &HeldLock{r: r, lock: l, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	go h.refreshLoop(lctx, opts.RefreshInterval)
	return lctx, h, nil
}

func newLock(exclusive bool) *Lock {
	l := &Lock{Time: time.Now(), Exclusive: exclusive, PID: os.Getpid(), PIDNamespace: pidNamespace()}
	l.Hostname, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		l.Username = u.Username
		if v, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			l.UID = uint32(v)
		}
		if v, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			l.GID = uint32(v)
		}
	}
	return l
}

func (r *Repository) tryLock(ctx context.Context, l *Lock, opts LockOptions) error {
	if err := r.checkLocks(ctx, l, opts, blob.ID{}); err != nil {
		return err
	}
	id, err := r.saveLock(ctx, l)
	if err != nil {
		return err
	}
	// Another client may have written its lock at the same moment: wait,
	// then look again, ignoring our own lock.
	if err := sleepCtx(ctx, opts.settle); err != nil {
		r.removeLock(id)
		return err
	}
	if err := r.checkLocks(ctx, l, opts, id); err != nil {
		r.removeLock(id)
		return err
	}
	return nil
}

func (r *Repository) saveLock(ctx context.Context, l *Lock) (blob.ID, error) {
	buf, err := json.Marshal(l)
	if err != nil {
		return blob.ID{}, err
	}
	id, err := r.SaveUnpacked(ctx, backend.LockFile, buf)
	if err != nil {
		return blob.ID{}, fmt.Errorf("create lock: %w", err)
	}
	l.id = id
	return id, nil
}

// removeLock deletes a lock file even when the operation's context is gone.
func (r *Repository) removeLock(id blob.ID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: id.String()})
}

// checkLocks looks for locks that conflict with l. A lock file that cannot
// be read is retried a few times (it may be half-visible); if it stays
// unreadable the caller is told to run unlock --remove-all.
func (r *Repository) checkLocks(ctx context.Context, l *Lock, opts LockOptions, own blob.ID) error {
	delay := opts.invalidRetry
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, delay); err != nil {
				return err
			}
			delay *= 2
		}
		lastErr = nil
		locks, err := r.loadLocks(ctx, own)
		if err != nil {
			return err
		}
		for _, other := range locks {
			if other.err != nil {
				lastErr = other.err
				continue
			}
			// A dead holder's lock protects nothing; it goes, whether it
			// conflicts or not, so that restic (which never ignores one)
			// is not blocked by it either. If it cannot be removed it is
			// treated like any other lock.
			if other.lock.holderGone() && r.removeStaleLock(ctx, other.id) {
				if opts.StaleRemoved != nil {
					opts.StaleRemoved(other.lock)
				}
				continue
			}
			if l.Exclusive || other.lock.Exclusive {
				return &LockedError{Lock: other.lock}
			}
		}
		if lastErr == nil {
			return nil
		}
	}
	return fmt.Errorf("invalid lock file (run `unlock --remove-all` if no other process uses the repository): %w", lastErr)
}

// removeStaleLock deletes a stale lock file and reports whether it is gone
// (also when another client removed it first).
func (r *Repository) removeStaleLock(ctx context.Context, id blob.ID) bool {
	err := r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: id.String()})
	return err == nil || errors.Is(err, fs.ErrNotExist)
}

type loadedLock struct {
	id   blob.ID
	lock *Lock
	err  error
}

func (r *Repository) loadLocks(ctx context.Context, skip blob.ID) ([]loadedLock, error) {
	var ids []blob.ID
	if err := r.List(ctx, backend.LockFile, func(id blob.ID, size int64) error {
		// Empty lock files are what a crashed non-atomic write leaves
		// behind; restic skips them too.
		if id != skip && size > 0 {
			ids = append(ids, id)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	out := make([]loadedLock, 0, len(ids))
	for _, id := range ids {
		l, err := r.LoadLock(ctx, id)
		if err != nil && errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out = append(out, loadedLock{id: id, lock: l, err: err})
	}
	return out, nil
}

// LoadLock loads one lock file.
func (r *Repository) LoadLock(ctx context.Context, id blob.ID) (*Lock, error) {
	buf, err := r.LoadUnpacked(ctx, backend.LockFile, id)
	if err != nil {
		return nil, err
	}
	l := &Lock{}
	if err := json.Unmarshal(buf, l); err != nil {
		return nil, fmt.Errorf("decode lock %s: %w", id.Str(), err)
	}
	l.id = id
	return l, nil
}

// Locks returns all readable locks; unreadable lock files are reported
// through warn.
func (r *Repository) Locks(ctx context.Context, warn func(id blob.ID, err error)) ([]*Lock, error) {
	loaded, err := r.loadLocks(ctx, blob.ID{})
	if err != nil {
		return nil, err
	}
	var out []*Lock
	for _, l := range loaded {
		if l.err != nil {
			if warn != nil {
				warn(l.id, l.err)
			}
			continue
		}
		out = append(out, l.lock)
	}
	return out, nil
}

// RemoveLocks deletes stale locks, or every lock file when all is set
// (restic's unlock and unlock --remove-all). It returns how many it removed.
func (r *Repository) RemoveLocks(ctx context.Context, all bool) (int, error) {
	var ids []blob.ID
	if err := r.List(ctx, backend.LockFile, func(id blob.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("list locks: %w", err)
	}
	n := 0
	for _, id := range ids {
		if !all {
			l, err := r.LoadLock(ctx, id)
			if err != nil || !l.Stale() {
				continue
			}
		}
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: id.String()}); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("remove lock %s: %w", id.Str(), err)
		}
		n++
	}
	return n, nil
}

func (h *HeldLock) refreshLoop(ctx context.Context, every time.Duration) {
	defer close(h.done)
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-h.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := h.refresh(ctx); err == nil {
			lastOK = time.Now()
			continue
		}
		// Past this age other clients may call our lock stale and remove
		// it; if it is gone, stop the operation rather than carry on
		// unprotected.
		if time.Since(lastOK) > StaleLockTimeout-StaleLockTimeout/4 {
			h.mu.Lock()
			id := h.lock.id
			h.mu.Unlock()
			if _, err := h.r.be.Stat(ctx, backend.Handle{Type: backend.LockFile, Name: id.String()}); errors.Is(err, fs.ErrNotExist) {
				h.cancel(ErrLockLost)
				return
			}
		}
	}
}

// refresh writes a new lock file with the current time, then removes the
// old one, so that there is always a lock in place.
func (h *HeldLock) refresh(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	nl := *h.lock
	nl.Time = time.Now()
	old := h.lock.id
	// Our lock file gone means another client took it for stale (after a
	// suspend, say, which the monotonic clock does not count) and may be
	// pruning: writing a fresh lock now would hide that. Stop instead.
	if _, err := h.r.be.Stat(ctx, backend.Handle{Type: backend.LockFile, Name: old.String()}); errors.Is(err, fs.ErrNotExist) {
		h.cancel(ErrLockLost)
		return ErrLockLost
	}
	if _, err := h.r.saveLock(ctx, &nl); err != nil {
		return err
	}
	h.lock = &nl
	if err := h.r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: old.String()}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove old lock %s: %w", old.Str(), err)
	}
	return nil
}

// Refresh rewrites the lock now (it also happens in the background).
func (h *HeldLock) Refresh(ctx context.Context) error { return h.refresh(ctx) }

// Lock returns the current lock file content.
func (h *HeldLock) Lock() Lock {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.lock
}

// Unlock stops refreshing and removes the lock file. It works even when the
// operation's context was cancelled. Calling it twice is harmless.
func (h *HeldLock) Unlock() error {
	if h == nil {
		return nil
	}
	select {
	case <-h.stop:
		return nil
	default:
	}
	close(h.stop)
	<-h.done
	h.cancel(nil)
	h.mu.Lock()
	id := h.lock.id
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: id.String()}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove lock %s: %w", id.Str(), err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
