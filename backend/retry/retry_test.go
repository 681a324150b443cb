package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/backend/retry"
)

// fast are options for tests: real backoff, in milliseconds.
func fast(report func(retry.Event)) retry.Options {
	return retry.Options{InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxElapsed: 5 * time.Second, Report: report}
}

// events collects reports from concurrent operations.
type events struct {
	mu  sync.Mutex
	all []retry.Event
}

func (e *events) add(ev retry.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) list() []retry.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]retry.Event(nil), e.all...)
}

func newFaulty(t *testing.T) (*backendtest.Faulty, *events, *retry.Backend) {
	t.Helper()
	f := backendtest.NewFaulty(mem.New())
	ev := &events{}
	return f, ev, retry.New(f, fast(ev.add))
}

func save(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatalf("save %v: %v", h, err)
	}
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return retry.New(mem.New(), fast(nil))
	})
}

var retryMessage = regexp.MustCompile(`^Save\(<data/[0-9a-f]{10}>\) returned error, retrying after [0-9.]+m?s: faulty: save <data/[0-9a-f]{10}>: backendtest: injected fault$`)

func TestSaveRecoversFromTransientFaults(t *testing.T) {
	f, ev, be := newFaulty(t)
	data := backendtest.Random(1, 100<<10)
	h := backendtest.HandleFor(backend.PackFile, data)
	f.Inject(backendtest.Fault{Op: backendtest.OpSave, Times: 2, When: backendtest.Before})
	// A transfer that breaks half way on the third attempt: the fourth must
	// send the whole file again from its first byte.
	f.Inject(backendtest.Fault{Op: backendtest.OpSave, Skip: 2, Times: 1, When: backendtest.MidStream})
	save(t, be, h, data)

	if n := f.Calls(backendtest.OpSave, backend.PackFile); n != 4 {
		t.Errorf("Save reached the backend %d times, want 4", n)
	}
	got, err := backend.LoadAll(t.Context(), f.Unwrap(), h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored file differs after retries (err %v, %d bytes, want %d)", err, len(got), len(data))
	}
	all := ev.list()
	if len(all) != 4 {
		t.Fatalf("got %d reports, want 3 retries and 1 success: %v", len(all), all)
	}
	for _, e := range all[:2] {
		if !retryMessage.MatchString(e.String()) {
			t.Errorf("retry message %q does not look like restic's", e.String())
		}
	}
	if want := fmt.Sprintf("Save(%v) operation successful after 3 retries", h); all[3].String() != want {
		t.Errorf("success message %q, want %q", all[3].String(), want)
	}
}

// noReplace hides the wrapped backend's atomic replace, like rest-server.
type noReplace struct{ backend.Backend }

func TestSaveRemovesAfterLostAnswer(t *testing.T) {
	f := backendtest.NewFaulty(mem.New())
	be := retry.New(noReplace{f}, fast(nil))
	data := backendtest.Random(2, 1000)
	h := backendtest.HandleFor(backend.SnapshotFile, data)
	// The file is stored, but the answer is lost.
	f.Inject(backendtest.Fault{Op: backendtest.OpSave, Times: 1, When: backendtest.After})
	save(t, be, h, data)
	if n := f.Calls(backendtest.OpRemove, backend.SnapshotFile); n != 1 {
		t.Errorf("Remove called %d times after a failed save on a backend without atomic replace, want 1", n)
	}
	got, err := backend.LoadAll(t.Context(), f.Unwrap(), h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file after the retried save: err %v, equal %v", err, bytes.Equal(got, data))
	}
}

// appendOnly refuses to overwrite or delete, like rest-server --append-only.
type appendOnly struct{ backend.Backend }

func (a appendOnly) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if _, err := a.Backend.Stat(ctx, h); err == nil {
		return fmt.Errorf("save %v: file exists: %w", h, fs.ErrPermission)
	}
	return a.Backend.Save(ctx, h, rd)
}

func (a appendOnly) Remove(_ context.Context, h backend.Handle) error {
	return fmt.Errorf("remove %v: append-only: %w", h, fs.ErrPermission)
}

func TestSaveLostAnswerOnAppendOnly(t *testing.T) {
	f := backendtest.NewFaulty(appendOnly{mem.New()})
	be := retry.New(noReplace{f}, fast(nil))
	data := backendtest.Random(8, 1000)
	h := backendtest.HandleFor(backend.PackFile, data)
	f.Inject(backendtest.Fault{Op: backendtest.OpSave, Times: 1, When: backendtest.After})
	save(t, be, h, data)
	if n := f.Calls(backendtest.OpSave, backend.PackFile); n != 2 {
		t.Errorf("%d save attempts, want 2", n)
	}
	// A file that exists from the start is still refused: only a retry
	// may find its own earlier upload.
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("first save of an existing file = %v, want the refusal", err)
	}
	// The config is not content-addressed: a refused retry stays refused.
	cfg := backend.Handle{Type: backend.ConfigFile}
	save(t, f.Unwrap(), cfg, data)
	f.Inject(backendtest.Fault{Op: backendtest.OpSave, Type: backend.ConfigFile, Times: 1})
	if err := be.Save(t.Context(), cfg, backend.NewByteReader(data, false)); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("retried config save onto an existing config = %v, want the refusal", err)
	}
}

func TestLoadRestartsCleanly(t *testing.T) {
	f, ev, be := newFaulty(t)
	data := backendtest.Random(3, 256<<10)
	h := backendtest.HandleFor(backend.PackFile, data)
	save(t, f, h, data)
	f.Inject(backendtest.Fault{Op: backendtest.OpLoad, Times: 2, When: backendtest.MidStream})

	const offset, length = 1000, 200 << 10
	var calls int
	var got []byte
	err := be.Load(t.Context(), h, length, offset, func(rd io.Reader) error {
		calls++
		got = got[:0] // idempotent, as the contract asks
		buf := make([]byte, 4096)
		for {
			n, err := rd.Read(buf)
			got = append(got, buf[:n]...)
			if !bytes.Equal(got, data[offset:offset+len(got)]) {
				return fmt.Errorf("call %d: reader yielded wrong bytes at %d", calls, len(got)-n)
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
		}
	})
	if err != nil {
		t.Fatalf("Load after two broken transfers: %v", err)
	}
	if calls != 3 || len(got) != length {
		t.Errorf("consumer called %d times (want 3), last call got %d bytes (want %d)", calls, len(got), length)
	}
	if n := len(ev.list()); n != 3 {
		t.Errorf("%d reports, want 2 retries and a success", n)
	}
}

func TestLoadConsumerVerdictNotRetried(t *testing.T) {
	f, ev, be := newFaulty(t)
	data := backendtest.Random(4, 1000)
	h := backendtest.HandleFor(backend.IndexFile, data)
	save(t, f, h, data)
	bad := errors.New("ciphertext verification failed")
	calls := 0
	err := be.Load(t.Context(), h, 0, 0, func(rd io.Reader) error {
		calls++
		if _, err := io.ReadAll(rd); err != nil {
			return err
		}
		return bad
	})
	if !errors.Is(err, bad) || calls != 1 {
		t.Fatalf("Load = %v after %d consumer calls, want the consumer's error after 1", err, calls)
	}
	if len(ev.list()) != 0 {
		t.Errorf("a consumer's own error was reported as a retry: %v", ev.list())
	}
}

func TestPermanentFailsFast(t *testing.T) {
	data := backendtest.Random(5, 1000)
	h := backendtest.HandleFor(backend.LockFile, data)
	perms := map[string]error{
		"permission": fs.ErrPermission,
		"disk full":  fmt.Errorf("write: %w", errDiskFull),
		"marked":     backend.PermanentError(errors.New("append-only")),
	}
	for name, perr := range perms {
		t.Run(name, func(t *testing.T) {
			f, ev, be := newFaulty(t)
			f.Inject(backendtest.Fault{Op: backendtest.OpSave, Err: perr})
			f.Inject(backendtest.Fault{Op: backendtest.OpRemove, Err: perr})
			if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); !errors.Is(err, perr) {
				t.Errorf("Save = %v, want %v", err, perr)
			}
			if err := be.Remove(t.Context(), h); !errors.Is(err, perr) {
				t.Errorf("Remove = %v, want %v", err, perr)
			}
			if s, r := f.Calls(backendtest.OpSave, backend.InvalidFile), f.Calls(backendtest.OpRemove, backend.InvalidFile); s != 1 || r != 1 {
				t.Errorf("permanent error tried %d saves and %d removes, want 1 each", s, r)
			}
			if len(ev.list()) != 0 {
				t.Errorf("permanent error reported: %v", ev.list())
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		f, ev, be := newFaulty(t)
		if _, err := be.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a missing file = %v", err)
		}
		err := be.Load(t.Context(), h, 0, 0, func(io.Reader) error { return nil })
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load of a missing file = %v", err)
		}
		if n := f.Calls(backendtest.OpStat, backend.InvalidFile) + f.Calls(backendtest.OpLoad, backend.InvalidFile); n != 2 {
			t.Errorf("%d calls for two operations on a missing file", n)
		}
		if len(ev.list()) != 0 {
			t.Errorf("missing file reported: %v", ev.list())
		}
	})
	t.Run("invalid handle", func(t *testing.T) {
		f, _, be := newFaulty(t)
		err := be.Save(t.Context(), backend.Handle{Type: backend.PackFile, Name: "../x"}, backend.NewByteReader(data, false))
		if err == nil || !backend.IsPermanent(err) || f.Calls(backendtest.OpSave, backend.InvalidFile) != 0 {
			t.Errorf("Save of an invalid handle = %v (permanent %v)", err, backend.IsPermanent(err))
		}
	})
}

func TestBounded(t *testing.T) {
	data := backendtest.Random(6, 100)
	h := backendtest.HandleFor(backend.KeyFile, data)
	t.Run("attempts", func(t *testing.T) {
		f := backendtest.NewFaulty(mem.New())
		ev := &events{}
		opts := fast(ev.add)
		opts.MaxAttempts = 3
		be := retry.New(f, opts)
		f.Inject(backendtest.Fault{Op: backendtest.OpSave})
		err := be.Save(t.Context(), h, backend.NewByteReader(data, false))
		if !errors.Is(err, backendtest.ErrInjected) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
			t.Errorf("Save = %v", err)
		}
		if n := f.Calls(backendtest.OpSave, backend.KeyFile); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}
		all := ev.list()
		if len(all) != 3 || !all[2].GaveUp || !strings.HasPrefix(all[2].String(), fmt.Sprintf("Save(%v) failed: ", h)) {
			t.Errorf("reports %v, want 2 retries and a final failure", all)
		}
	})
	t.Run("time", func(t *testing.T) {
		f := backendtest.NewFaulty(mem.New())
		be := retry.New(f, retry.Options{InitialDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond, MaxElapsed: 300 * time.Millisecond, MaxAttempts: 1000})
		f.Inject(backendtest.Fault{Op: backendtest.OpStat})
		start := time.Now()
		_, err := be.Stat(t.Context(), h)
		took := time.Since(start)
		if !errors.Is(err, backendtest.ErrInjected) {
			t.Errorf("Stat = %v", err)
		}
		if took > 2*time.Second {
			t.Errorf("gave up after %v, bound 300ms", took)
		}
		if n := f.Calls(backendtest.OpStat, backend.KeyFile); n < 5 {
			t.Errorf("only %d attempts in 300ms with 10–30ms waits", n)
		}
	})
}

func TestCancelStopsWaiting(t *testing.T) {
	f := backendtest.NewFaulty(mem.New())
	be := retry.New(f, retry.Options{InitialDelay: time.Hour, MaxElapsed: 2 * time.Hour})
	f.Inject(backendtest.Fault{Op: backendtest.OpList})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, backendtest.ErrInjected) {
		t.Errorf("List = %v, want cancellation naming the last error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v to end a 30–90 minute wait", d)
	}
	// A context that is already done never reaches the backend.
	data := backendtest.Random(7, 10)
	if err := be.Save(ctx, backendtest.HandleFor(backend.LockFile, data), backend.NewByteReader(data, false)); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context = %v", err)
	}
	if n := f.Calls(backendtest.OpSave, backend.InvalidFile); n != 0 {
		t.Errorf("Save with a cancelled context reached the backend %d times", n)
	}
}

func TestListReportsEachFileOnce(t *testing.T) {
	f, _, be := newFaulty(t)
	want := map[string]bool{}
	for i := range 5 {
		d := backendtest.Random(uint64(10+i), 50)
		h := backendtest.HandleFor(backend.IndexFile, d)
		save(t, f, h, d)
		want[h.Name] = true
	}
	// The first listing reports everything and then fails.
	f.Inject(backendtest.Fault{Op: backendtest.OpList, Times: 1, When: backendtest.After})
	seen := map[string]int{}
	if err := be.List(t.Context(), backend.IndexFile, func(fi backend.FileInfo) error { seen[fi.Name]++; return nil }); err != nil {
		t.Fatal(err)
	}
	if f.Calls(backendtest.OpList, backend.IndexFile) != 2 {
		t.Errorf("listing not retried")
	}
	for name := range want {
		if seen[name] != 1 {
			t.Errorf("%s reported %d times", name[:8], seen[name])
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := be.List(t.Context(), backend.IndexFile, func(backend.FileInfo) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("List with a failing callback = %v after %d calls", err, calls)
	}
}

var errDiskFull = syscall.ENOSPC

func TestUnreachableAtStart(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	data := backendtest.Random(9, 100)
	h := backendtest.HandleFor(backend.SnapshotFile, data)

	// Never answered: reported at once.
	f, ev, be := newFaulty(t)
	f.Inject(backendtest.Fault{Op: backendtest.OpStat, Times: 1, Err: refused})
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Stat of an unreachable server = %v", err)
	}
	if n := f.Calls(backendtest.OpStat, backend.InvalidFile); n != 1 || len(ev.list()) != 0 {
		t.Errorf("an unreachable server was retried (%d calls, reports %v)", n, ev.list())
	}
	// Once it has answered (here with "not found"), losing it is
	// transient: the next refusal is retried and the operation recovers.
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat = %v, want not found", err)
	}
	save(t, f, h, data)
	f.Inject(backendtest.Fault{Op: backendtest.OpStat, Times: 1, Err: refused})
	if _, err := be.Stat(t.Context(), h); err != nil {
		t.Errorf("Stat after the server came back: %v", err)
	}
	if n := f.Calls(backendtest.OpStat, backend.InvalidFile); n != 4 {
		t.Errorf("%d Stat calls, want 4", n)
	}

	// restic's behaviour on request.
	f = backendtest.NewFaulty(mem.New())
	opts := fast(nil)
	opts.RetryUnreachable = true
	be = retry.New(f, opts)
	f.Inject(backendtest.Fault{Op: backendtest.OpStat, Times: 1, Err: refused})
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) || f.Calls(backendtest.OpStat, backend.InvalidFile) != 2 {
		t.Errorf("RetryUnreachable: Stat = %v after %d calls", err, f.Calls(backendtest.OpStat, backend.InvalidFile))
	}
}
