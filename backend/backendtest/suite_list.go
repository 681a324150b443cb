package backendtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// testListByType saves files of every type and checks that each List shows
// exactly its own type, with sizes.
func testListByType(t *testing.T, be backend.Backend) {
	want := make(map[backend.FileType]map[string]int64)
	for i, ft := range listTypes {
		want[ft] = make(map[string]int64)
		for j := range 3 + i {
			data := Random(uint64(1000*i+j), 10+100*j+i)
			h := saveNew(t, be, ft, data)
			want[ft][h.Name] = int64(len(data))
		}
	}
	// A config must never show up in any listing.
	save(t, be, backend.Handle{Type: backend.ConfigFile}, []byte("config"))
	for _, ft := range listTypes {
		checkList(t, be, ft, want[ft])
	}
}

// packName returns a valid pack name that starts with the two hex digits of
// prefix, so the test controls which data/XX directory it lands in.
func packName(prefix byte, data []byte) string {
	return fmt.Sprintf("%02x", prefix) + HandleFor(backend.PackFile, data).Name[2:]
}

// testListPackSubdirs spreads packs over data/00, data/ff and others, with
// several packs sharing one directory.
func testListPackSubdirs(t *testing.T, be backend.Backend) {
	want := make(map[string]int64)
	for i, prefix := range []byte{0x00, 0x00, 0x01, 0x7a, 0x7a, 0x7a, 0xa0, 0xfe, 0xff, 0xff} {
		data := Random(uint64(200+i), 50+i)
		h := backend.Handle{Type: backend.PackFile, Name: packName(prefix, data)}
		save(t, be, h, data)
		want[h.Name] = int64(len(data))
	}
	checkList(t, be, backend.PackFile, want)
	for _, ft := range []backend.FileType{backend.IndexFile, backend.KeyFile} {
		checkList(t, be, ft, nil)
	}
}

func testListStopsOnError(t *testing.T, be backend.Backend) {
	for i := range 5 {
		saveNew(t, be, backend.SnapshotFile, Random(uint64(300+i), 100))
	}
	errStop := errors.New("stop listing")
	calls := 0
	err := be.List(t.Context(), backend.SnapshotFile, func(backend.FileInfo) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("List returned %v, want fn's error", err)
	}
	if calls != 1 {
		t.Fatalf("List called fn %d times after fn failed on the first call, want 1", calls)
	}
}

func testListCancelled(t *testing.T, be backend.Backend) {
	for i := range 5 {
		saveNew(t, be, backend.PackFile, Random(uint64(400+i), 100))
	}
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := 0
		err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { calls++; return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("List with a cancelled context = %v, want an error wrapping context.Canceled", err)
		}
		if calls != 0 {
			t.Errorf("List with a cancelled context called fn %d times", calls)
		}
	})
	t.Run("during", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error {
			calls++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("List cancelled in the first callback = %v, want an error wrapping context.Canceled", err)
		}
		if calls != 1 {
			t.Errorf("List called fn %d times after the context was cancelled in the first call, want 1", calls)
		}
	})
}

func testRemove(t *testing.T, be backend.Backend) {
	var hs []backend.Handle
	want := make(map[string]int64)
	for i := range 3 {
		data := Random(uint64(500+i), 700)
		h := saveNew(t, be, backend.PackFile, data)
		hs = append(hs, h)
		want[h.Name] = int64(len(data))
	}
	if err := be.Remove(t.Context(), hs[1]); err != nil {
		t.Fatalf("Remove(%v): %v", hs[1], err)
	}
	delete(want, hs[1].Name)
	checkNotExist(t, be, hs[1])
	checkList(t, be, backend.PackFile, want)
	checkContent(t, be, hs[0], Random(500, 700))
	checkContent(t, be, hs[2], Random(502, 700))

	if err := be.Remove(t.Context(), hs[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Remove(%v) = %v, want an error wrapping fs.ErrNotExist", hs[1], err)
	}
	// A removed name can be saved again (restic rewrites packs under the
	// same name during repair).
	save(t, be, hs[1], Random(501, 700))
	checkContent(t, be, hs[1], Random(501, 700))

	cfg := backend.Handle{Type: backend.ConfigFile}
	save(t, be, cfg, []byte("config"))
	if err := be.Remove(t.Context(), cfg); err != nil {
		t.Fatalf("Remove(config): %v", err)
	}
	checkNotExist(t, be, cfg)
}
