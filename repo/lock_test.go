package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
)

var fastLock = LockOptions{settle: time.Millisecond, invalidRetry: time.Millisecond}

func TestLockConflicts(t *testing.T) {
	ctx := context.Background()
	r, _ := initMem(t, 2, Options{})
	_, shared1, err := r.Lock(ctx, false, fastLock)
	if err != nil {
		t.Fatal(err)
	}
	_, shared2, err := r.Lock(ctx, false, fastLock)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	_, _, err = r.Lock(ctx, true, fastLock)
	var le *LockedError
	if !errors.As(err, &le) || le.Lock.Exclusive || le.Lock.PID != os.Getpid() {
		t.Fatalf("exclusive over shared: %v", err)
	}
	if err := shared1.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := shared2.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := shared2.Unlock(); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
	_, excl, err := r.Lock(ctx, true, fastLock)
	if err != nil {
		t.Fatalf("exclusive after unlock: %v", err)
	}
	if _, _, err := r.Lock(ctx, false, fastLock); !errors.As(err, &le) || !le.Lock.Exclusive {
		t.Fatalf("shared over exclusive: %v", err)
	}
	// With --retry-lock the second locker waits for the first to finish.
	go func() { time.Sleep(100 * time.Millisecond); _ = excl.Unlock() }()
	opts := fastLock
	opts.RetryLock = 10 * time.Second
	_, l, err := r.Lock(ctx, false, opts)
	if err != nil {
		t.Fatalf("retry lock: %v", err)
	}
	_ = l.Unlock()
	locks, err := r.Locks(ctx, nil)
	if err != nil || len(locks) != 0 {
		t.Fatalf("locks left: %v %v", locks, err)
	}
}

func TestStaleLocks(t *testing.T) {
	ctx := context.Background()
	r, _ := initMem(t, 2, Options{})
	save := func(l *Lock) {
		t.Helper()
		if _, err := r.saveLock(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	host, _ := os.Hostname()
	old := &Lock{Time: time.Now().Add(-time.Hour), Exclusive: true, Hostname: "otherhost", PID: 1}
	// restic's lock names no PID namespace: restic's rule, same host name.
	deadPID := &Lock{Time: time.Now(), Hostname: host, PID: 1 << 30}
	deadHere := &Lock{Time: time.Now(), Hostname: "renamed", PID: 1 << 30, PIDNamespace: pidNamespace()}
	fresh := &Lock{Time: time.Now(), Hostname: "otherhost", PID: 1}
	// Same host name, another PID namespace: its PID says nothing here.
	elsewhere := &Lock{Time: time.Now(), Hostname: host, PID: 1 << 30, PIDNamespace: "other-boot/pid:[4026531836]"}
	for _, l := range []*Lock{old, deadPID, deadHere, fresh, elsewhere} {
		save(l)
	}
	if !old.Stale() || !deadPID.Stale() || !deadHere.Stale() || fresh.Stale() || elsewhere.Stale() {
		t.Fatalf("stale: old %v dead %v dead here %v fresh %v elsewhere %v",
			old.Stale(), deadPID.Stale(), deadHere.Stale(), fresh.Stale(), elsewhere.Stale())
	}
	n, err := r.RemoveLocks(ctx, false)
	if err != nil || n != 3 {
		t.Fatalf("removed %d stale locks: %v", n, err)
	}
	n, err = r.RemoveLocks(ctx, true)
	if err != nil || n != 2 {
		t.Fatalf("remove all: %d %v", n, err)
	}
}

// Lock removes stale locks on its way, conflicting or not, and is still
// blocked by a live one.
func TestLockRemovesStaleLocks(t *testing.T) {
	ctx := context.Background()
	r, _ := initMem(t, 2, Options{})
	host, _ := os.Hostname()
	save := func(l *Lock) blob.ID {
		t.Helper()
		id, err := r.saveLock(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	oldExcl := save(&Lock{Time: time.Now().Add(-time.Hour), Exclusive: true, Hostname: "otherhost", PID: 1})
	deadShared := save(&Lock{Time: time.Now(), Hostname: host, PID: 1 << 30, PIDNamespace: pidNamespace()})
	var removed []blob.ID
	opts := fastLock
	opts.StaleRemoved = func(l *Lock) { removed = append(removed, l.ID()) }
	_, held, err := r.Lock(ctx, true, opts)
	if err != nil {
		t.Fatalf("stale locks blocked an exclusive lock: %v", err)
	}
	if len(removed) != 2 || !slices.Contains(removed, oldExcl) || !slices.Contains(removed, deadShared) {
		t.Errorf("reported removed %v, want %v and %v", removed, oldExcl, deadShared)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if locks, _ := r.Locks(ctx, nil); len(locks) != 0 {
		t.Errorf("%d locks left, want none", len(locks))
	}

	// A fresh lock from another host is alive as far as we can tell.
	live := save(&Lock{Time: time.Now(), Exclusive: true, Hostname: "otherhost", PID: 1})
	var locked *LockedError
	if _, _, err := r.Lock(ctx, false, fastLock); !errors.As(err, &locked) || locked.Lock.ID() != live {
		t.Fatalf("live exclusive lock: got %v", err)
	}
}

// Lock removes another process's lock on its own only when it knows that
// process is gone. A dead PID on a host of our name proves nothing unless
// the lock names our PID namespace: containers that share a host name
// number their processes apart, and a live holder's PID may be free here.
func TestLockKeepsLocksItCannotProveDead(t *testing.T) {
	ctx := context.Background()
	r, _ := initMem(t, 2, Options{})
	host, _ := os.Hostname()
	cases := map[string]*Lock{
		// restic's lock: no namespace; restic's own rule (and unlock)
		// calls it stale.
		"restic": {Time: time.Now(), Exclusive: true, Hostname: host, PID: 1 << 30},
		// cairn's lock from a container with our host name.
		"other namespace": {Time: time.Now(), Exclusive: true, Hostname: host, PID: 1 << 30, PIDNamespace: "3f0c/pid:[4026532301]"},
	}
	for name, l := range cases {
		id, err := r.saveLock(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		var locked *LockedError
		if _, held, err := r.Lock(ctx, false, fastLock); !errors.As(err, &locked) || locked.Lock.ID() != id {
			_ = held.Unlock()
			t.Errorf("%s: a live-looking exclusive lock did not block: %v", name, err)
		}
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: id.String()}); err != nil {
			t.Fatal(err)
		}
	}

	// Our own locks name our namespace, so that our next run may remove
	// them once we are gone.
	_, held, err := r.Lock(ctx, false, fastLock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	if l := held.Lock(); l.PIDNamespace != pidNamespace() || (runtime.GOOS == "linux" && l.PIDNamespace == "") {
		t.Errorf("lock names PID namespace %q, this process is in %q", l.PIDNamespace, pidNamespace())
	}
}

// TestPIDNamespace starts this test binary in the same PID namespace and in
// a new one (unshare, as root) and compares what each calls its namespace.
func TestPIDNamespace(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("PID namespaces are Linux's")
	}
	if os.Getenv("CAIRN_PRINT_PID_NAMESPACE") != "" {
		fmt.Print(pidNamespace())
		return
	}
	here := pidNamespace()
	if !strings.Contains(here, "/pid:[") {
		t.Fatalf("this process's PID namespace is %q", here)
	}
	child := func(argv ...string) (string, error) {
		argv = append(argv, os.Args[0], "-test.run=^TestPIDNamespace$", "-test.count=1")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "CAIRN_PRINT_PID_NAMESPACE=1")
		out, err := cmd.Output()
		ns, _, _ := strings.Cut(string(out), "PASS")
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, ee.Stderr)
			}
		}
		return strings.TrimSpace(ns), err
	}
	same, err := child()
	if err != nil || same != here {
		t.Fatalf("a child in the same namespace says %q (%v), want %q", same, err, here)
	}
	other, err := child("unshare", "--pid", "--fork", "--mount-proc")
	if err != nil && os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skipf("unshare needs root here: %v", err)
	}
	if err != nil {
		t.Fatalf("run in a new PID namespace: %v", err)
	}
	bootHere, _, _ := strings.Cut(here, "/")
	bootThere, nsThere, _ := strings.Cut(other, "/")
	if other == here || bootThere != bootHere || !strings.HasPrefix(nsThere, "pid:[") {
		t.Fatalf("in a new PID namespace: %q, here: %q", other, here)
	}
}

func TestInvalidLockFile(t *testing.T) {
	ctx := context.Background()
	r, be := initMem(t, 2, Options{})
	name := "0000000000000000000000000000000000000000000000000000000000000001"
	if err := be.Save(ctx, backend.Handle{Type: backend.LockFile, Name: name}, backend.NewByteReader([]byte("garbage, not sealed"), false)); err != nil {
		t.Fatal(err)
	}
	_, _, err := r.Lock(ctx, false, fastLock)
	if err == nil {
		t.Fatal("unreadable lock file ignored")
	}
}

func TestLockRefresh(t *testing.T) {
	ctx := context.Background()
	r, _ := initMem(t, 2, Options{})
	opts := fastLock
	opts.RefreshInterval = 20 * time.Millisecond
	lctx, h, err := r.Lock(ctx, true, opts)
	if err != nil {
		t.Fatal(err)
	}
	first := h.Lock()
	time.Sleep(150 * time.Millisecond)
	now := h.Lock()
	if !now.Time.After(first.Time) || now.ID() == first.ID() {
		t.Fatal("lock was not refreshed")
	}
	locks, _ := r.Locks(ctx, nil)
	if len(locks) != 1 {
		t.Fatalf("%d lock files after refresh", len(locks))
	}
	if lctx.Err() != nil {
		t.Fatal("lock context cancelled while held")
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if locks, _ := r.Locks(ctx, nil); len(locks) != 0 {
		t.Fatal("lock left after Unlock")
	}
}

// A held lock that another client removed (it took it for stale, e.g.
// after a suspend) is lost: the next refresh cancels the operation with
// ErrLockLost instead of quietly writing a fresh lock.
func TestLockRemovedByOtherIsLost(t *testing.T) {
	ctx := context.Background()
	r, _ := initMem(t, 2, Options{})
	opts := fastLock
	opts.RefreshInterval = 20 * time.Millisecond
	lctx, h, err := r.Lock(ctx, false, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	if _, err := r.RemoveLocks(ctx, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the operation went on after its lock was removed")
	}
	if cause := context.Cause(lctx); !errors.Is(cause, ErrLockLost) {
		t.Errorf("cause %v, want ErrLockLost", cause)
	}
	if locks, _ := r.Locks(ctx, nil); len(locks) != 0 {
		t.Errorf("%d lock files written after the lock was lost", len(locks))
	}
}

// --retry-lock waits out a lock that becomes stale while it waits: a
// CronJob pod killed 29m58s ago (another host, so only its age counts) no
// longer blocks the next pod's run once it is 30 minutes old.
func TestRetryLockOutlivesStaleLock(t *testing.T) {
	ctx := context.Background()
	r, _ := initMem(t, 2, Options{})
	if _, err := r.saveLock(ctx, &Lock{Time: time.Now().Add(-StaleLockTimeout + 2*time.Second), Exclusive: true, Hostname: "killed-pod", PID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Lock(ctx, false, fastLock); err == nil {
		t.Fatal("a lock refreshed 29m58s ago did not block")
	}
	opts := fastLock
	opts.RetryLock = time.Minute
	start := time.Now()
	_, held, err := r.Lock(ctx, false, opts)
	if err != nil {
		t.Fatalf("after the lock went stale: %v", err)
	}
	defer held.Unlock()
	if waited := time.Since(start); waited > 20*time.Second {
		t.Errorf("waited %v", waited)
	}
}
