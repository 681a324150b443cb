package backendtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// failingReader yields the first failAt bytes of data and then fails with
// err. It fails the same way after Rewind, so a retrying backend cannot
// succeed by trying again.
type failingReader struct {
	data   []byte
	failAt int
	pos    int
	err    error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.pos >= r.failAt {
		return 0, r.err
	}
	n := copy(p, r.data[r.pos:r.failAt])
	r.pos += n
	return n, nil
}

func (r *failingReader) Rewind() error { r.pos = 0; return nil }
func (r *failingReader) Length() int64 { return int64(len(r.data)) }
func (r *failingReader) Hash() []byte  { return nil }

// shortReader claims 42 more bytes than it yields.
type shortReader struct{ *backend.ByteReader }

func (r shortReader) Length() int64 { return r.ByteReader.Length() + 42 }
func (r shortReader) Hash() []byte  { return nil }

// hookReader calls hook once, as soon as at least at bytes have been read.
// It wraps the ByteReader instead of embedding it, so that a backend cannot
// bypass Read through a promoted WriteTo, ReadAt or Seek.
type hookReader struct {
	br    *backend.ByteReader
	at    int64
	read  int64
	hook  func()
	fired bool
}

func (r *hookReader) Read(p []byte) (int, error) {
	n, err := r.br.Read(p)
	r.read += int64(n)
	if !r.fired && r.read >= r.at {
		r.fired = true
		r.hook()
	}
	return n, err
}

func (r *hookReader) Rewind() error { r.read = 0; return r.br.Rewind() }
func (r *hookReader) Length() int64 { return r.br.Length() }
func (r *hookReader) Hash() []byte  { return r.br.Hash() }

var errReader = errors.New("reader failed on purpose")

func testSaveReaderFails(t *testing.T, be backend.Backend) {
	for _, ft := range []backend.FileType{backend.PackFile, backend.ConfigFile, backend.KeyFile} {
		data := Random(600, 2<<20+99)
		h := HandleFor(ft, data)
		for _, failAt := range []int{0, 1, len(data) / 2, len(data) - 1} {
			err := be.Save(t.Context(), h, &failingReader{data: data, failAt: failAt, err: errReader})
			if err == nil {
				t.Fatalf("Save(%v) with a reader failing after %d of %d bytes succeeded", h, failAt, len(data))
			}
			checkNotExist(t, be, h)
		}
	}
}

// testSaveReaderFailsKeepsOld checks that a failed Save over an existing
// config (the upgrade path) keeps the old content intact.
func testSaveReaderFailsKeepsOld(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.ConfigFile}
	old := Random(601, 300)
	save(t, be, h, old)
	newData := Random(602, 5000)
	err := be.Save(t.Context(), h, &failingReader{data: newData, failAt: 2500, err: errReader})
	if err == nil {
		t.Fatal("Save of config with a failing reader succeeded")
	}
	checkContent(t, be, h, old)
}

func testSaveShortReader(t *testing.T, be backend.Backend) {
	for _, ft := range []backend.FileType{backend.PackFile, backend.IndexFile} {
		data := Random(603, 100<<10)
		h := HandleFor(ft, data)
		err := be.Save(t.Context(), h, shortReader{backend.NewByteReader(data, false)})
		if err == nil {
			t.Fatalf("Save(%v) succeeded although the reader yielded 42 bytes less than Length()", h)
		}
		checkNotExist(t, be, h)
	}
}

func testSaveCancelledBefore(t *testing.T, be backend.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, ft := range []backend.FileType{backend.PackFile, backend.ConfigFile} {
		data := Random(604, 1000)
		h := HandleFor(ft, data)
		err := be.Save(ctx, h, backend.NewByteReader(data, true))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Save(%v) with a cancelled context = %v, want an error wrapping context.Canceled", h, err)
		}
		checkNotExist(t, be, h)
	}
}

// testSaveCancelledDuring cancels the context while the backend is reading
// the data. Whether the backend still completes is a race it may win, but
// its answer must match what it stored: an error means nothing is visible,
// success means everything is.
func testSaveCancelledDuring(t *testing.T, be backend.Backend) {
	for _, ft := range []backend.FileType{backend.PackFile, backend.SnapshotFile} {
		data := Random(605, 4<<20)
		h := HandleFor(ft, data)
		ctx, cancel := context.WithCancel(t.Context())
		rd := &hookReader{br: backend.NewByteReader(data, true), at: int64(len(data) / 2), hook: cancel}
		err := be.Save(ctx, h, rd)
		cancel()
		if err != nil {
			t.Logf("Save(%v) cancelled half way: %v", h, err)
			checkNotExist(t, be, h)
			continue
		}
		t.Logf("Save(%v) completed although its context was cancelled half way", h)
		checkContent(t, be, h, data)
	}
}

func testSaveConfigTwice(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.ConfigFile}
	first, second := Random(606, 400), Random(607, 350)
	save(t, be, h, first)
	err := be.Save(t.Context(), h, backend.NewByteReader(second, true))
	r, ok := be.(backend.Replacer)
	atomic := ok && r.HasAtomicReplace()
	switch {
	case err == nil:
		checkContent(t, be, h, second)
	case atomic:
		t.Fatalf("second Save(config) on a backend with atomic replace: %v", err)
	default:
		t.Logf("second Save(config) refused: %v", err)
		checkContent(t, be, h, first)
	}
}

// testSaveExistingPack saves the same pack twice, as a retried upload does.
// The second Save may fail, but the file must stay intact and listed once.
func testSaveExistingPack(t *testing.T, be backend.Backend) {
	data := Random(608, 64<<10)
	h := saveNew(t, be, backend.PackFile, data)
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, true)); err != nil {
		t.Logf("second Save(%v) refused: %v", h, err)
	}
	checkContent(t, be, h, data)
	checkList(t, be, backend.PackFile, map[string]int64{h.Name: int64(len(data))})
}

// testHostileNames checks that handles which cannot name a file in restic's
// layout, in particular names that would climb out of their directory, are
// refused by every method and leave no trace.
func testHostileNames(t *testing.T, be backend.Backend) {
	valid := HandleFor(backend.KeyFile, []byte("x")).Name
	hostile := []backend.Handle{
		{Type: backend.InvalidFile, Name: valid},
		{Type: backend.PackFile + 1, Name: valid},
		{Type: 255, Name: valid},
		{Type: backend.PackFile, Name: ""},
		{Type: backend.KeyFile, Name: ""},
		{Type: backend.KeyFile, Name: "../config"},
		{Type: backend.SnapshotFile, Name: "../keys/" + valid},
		{Type: backend.PackFile, Name: "../../" + valid},
		{Type: backend.IndexFile, Name: "a/b"},
		{Type: backend.LockFile, Name: ".."},
		{Type: backend.LockFile, Name: "."},
		{Type: backend.IndexFile, Name: "/" + valid},
	}
	for _, h := range hostile {
		data := []byte("hostile " + h.Name)
		if err := be.Save(t.Context(), h, backend.NewByteReader(data, true)); err == nil {
			t.Errorf("Save(type %d, name %q) succeeded, want an error", uint8(h.Type), h.Name)
		}
		called := false
		err := be.Load(t.Context(), h, 0, 0, func(io.Reader) error { called = true; return nil })
		if err == nil || called {
			t.Errorf("Load(type %d, name %q) = %v (fn called: %v), want an error without calling fn",
				uint8(h.Type), h.Name, err, called)
		}
		if _, err := be.Stat(t.Context(), h); err == nil {
			t.Errorf("Stat(type %d, name %q) succeeded, want an error", uint8(h.Type), h.Name)
		}
		if err := be.Remove(t.Context(), h); err == nil {
			t.Errorf("Remove(type %d, name %q) succeeded, want an error", uint8(h.Type), h.Name)
		}
	}
	for _, ft := range listTypes {
		checkList(t, be, ft, nil)
	}
	checkNotExist(t, be, backend.Handle{Type: backend.ConfigFile})
	if err := be.List(t.Context(), backend.InvalidFile, func(backend.FileInfo) error { return nil }); err == nil {
		t.Errorf("List(InvalidFile) succeeded, want an error")
	}
}

// testCreate checks that Create is idempotent on an empty location, keeps
// existing files, and refuses a location that already holds a config so a
// repository cannot be initialised twice.
func testCreate(t *testing.T, be backend.Backend) {
	c, ok := be.(backend.Creator)
	if !ok {
		t.Skip("backend does not implement backend.Creator")
	}
	key := saveNew(t, be, backend.KeyFile, Random(609, 300))
	if err := c.Create(t.Context()); err != nil {
		t.Fatalf("Create on a created location without config: %v", err)
	}
	checkContent(t, be, key, Random(609, 300))
	cfg := []byte("config")
	save(t, be, backend.Handle{Type: backend.ConfigFile}, cfg)
	if err := c.Create(t.Context()); err == nil {
		t.Fatal("Create on a location with a config succeeded, want an error")
	}
	checkContent(t, be, backend.Handle{Type: backend.ConfigFile}, cfg)
	if !bytes.Equal(load(t, be, key, 0, 0), Random(609, 300)) {
		t.Fatal("Create changed an existing key file")
	}
}
