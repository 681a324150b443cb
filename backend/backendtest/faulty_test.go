package backendtest_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
)

// TestFaultyConformance proves that a Faulty without faults is transparent.
func TestFaultyConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		be := backendtest.NewFaulty(mem.New())
		t.Cleanup(func() { _ = be.Close() })
		return be
	})
}

func saveData(t *testing.T, be backend.Backend, ft backend.FileType, seed uint64, size int) (backend.Handle, []byte) {
	t.Helper()
	data := backendtest.Random(seed, size)
	h := backendtest.HandleFor(ft, data)
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
	return h, data
}

func loadRange(t *testing.T, be backend.Backend, h backend.Handle, length int, offset int64) ([]byte, error) {
	t.Helper()
	var got []byte
	err := be.Load(t.Context(), h, length, offset, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		got = b
		return err
	})
	return got, err
}

func TestFaultyFailNthSave(t *testing.T) {
	inner := mem.New()
	f := backendtest.NewFaulty(inner)
	f.FailNth(backendtest.OpSave, backend.PackFile, 3, nil)
	for i := range 5 {
		data := backendtest.Random(uint64(i), 100)
		h := backendtest.HandleFor(backend.PackFile, data)
		err := f.Save(t.Context(), h, backend.NewByteReader(data, false))
		_, statErr := inner.Stat(t.Context(), h)
		if i == 2 {
			if !errors.Is(err, backendtest.ErrInjected) {
				t.Fatalf("third pack Save = %v, want ErrInjected", err)
			}
			if !errors.Is(statErr, fs.ErrNotExist) {
				t.Fatalf("a Save failed Before reached the inner backend: %v", statErr)
			}
			continue
		}
		if err != nil || statErr != nil {
			t.Fatalf("pack Save %d = %v (stat %v), want success", i+1, err, statErr)
		}
	}
	// Other types are not affected.
	saveData(t, f, backend.IndexFile, 10, 100)
	if got := f.Calls(backendtest.OpSave, backend.PackFile); got != 5 {
		t.Errorf("Calls(save, data) = %d, want 5", got)
	}
	if got := f.Calls(backendtest.OpSave, backend.InvalidFile); got != 6 {
		t.Errorf("Calls(save, any) = %d, want 6", got)
	}
}

func TestFaultyAfter(t *testing.T) {
	inner := mem.New()
	f := backendtest.NewFaulty(inner)
	errLost := errors.New("response lost")
	f.Inject(backendtest.Fault{Op: backendtest.OpSave, When: backendtest.After, Err: errLost})
	f.Inject(backendtest.Fault{Op: backendtest.OpRemove, When: backendtest.After})

	data := backendtest.Random(1, 100)
	h := backendtest.HandleFor(backend.KeyFile, data)
	if err := f.Save(t.Context(), h, backend.NewByteReader(data, false)); !errors.Is(err, errLost) {
		t.Fatalf("Save = %v, want the injected error", err)
	}
	if got, err := backend.LoadAll(t.Context(), inner, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a Save failed After is not stored in the inner backend: %v", err)
	}
	if err := f.Remove(t.Context(), h); !errors.Is(err, backendtest.ErrInjected) {
		t.Fatalf("Remove = %v, want ErrInjected", err)
	}
	if _, err := inner.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a Remove failed After did not remove: %v", err)
	}
}

func TestFaultyMidStream(t *testing.T) {
	inner := mem.New()
	f := backendtest.NewFaulty(inner)
	h, data := saveData(t, f, backend.PackFile, 2, 1000)

	f.Inject(backendtest.Fault{Op: backendtest.OpSave, Type: backend.PackFile, When: backendtest.MidStream, Times: 1})
	data2 := backendtest.Random(3, 1000)
	h2 := backendtest.HandleFor(backend.PackFile, data2)
	if err := f.Save(t.Context(), h2, backend.NewByteReader(data2, false)); !errors.Is(err, backendtest.ErrInjected) {
		t.Fatalf("Save with a stream broken half way = %v, want an error wrapping ErrInjected", err)
	}
	if _, err := inner.Stat(t.Context(), h2); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a Save whose stream broke left a file: %v", err)
	}

	f.Inject(backendtest.Fault{Op: backendtest.OpLoad, Name: h.Name, When: backendtest.MidStream})
	for _, r := range []struct {
		length int
		offset int64
		want   []byte
	}{{0, 0, data[:500]}, {400, 100, data[100:300]}} {
		got, err := loadRange(t, f, h, r.length, r.offset)
		if !errors.Is(err, backendtest.ErrInjected) {
			t.Fatalf("Load(%d, %d) with a broken stream = %v, want ErrInjected", r.length, r.offset, err)
		}
		if !bytes.Equal(got, r.want) {
			t.Fatalf("Load(%d, %d) with a broken stream read %d bytes, want the first half of the range (%d)",
				r.length, r.offset, len(got), len(r.want))
		}
	}
	// Only the named file is affected.
	h3, data3 := saveData(t, f, backend.PackFile, 4, 300)
	if got, err := backend.LoadAll(t.Context(), f, h3); err != nil || !bytes.Equal(got, data3) {
		t.Fatalf("Load of another file = %v, want it untouched", err)
	}
}

func TestFaultyCorrupt(t *testing.T) {
	f := backendtest.NewFaulty(mem.New())
	h, data := saveData(t, f, backend.PackFile, 5, 1000)
	f.Corrupt(h, 700)
	tests := []struct {
		length int
		offset int64
		flip   int // index in the result expected to be flipped, -1 for none
	}{
		{0, 0, 700},
		{200, 600, 100},
		{1, 700, 0},
		{100, 0, -1},
		{0, 701, -1},
	}
	for _, tc := range tests {
		got, err := loadRange(t, f, h, tc.length, tc.offset)
		if err != nil {
			t.Fatalf("Load(%d, %d): %v", tc.length, tc.offset, err)
		}
		end := int64(len(data))
		if tc.length > 0 {
			end = tc.offset + int64(tc.length)
		}
		want := bytes.Clone(data[tc.offset:end])
		if tc.flip >= 0 {
			want[tc.flip] ^= 0xff
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Load(%d, %d) with byte 700 corrupted: wrong data", tc.length, tc.offset)
		}
	}
	if fi, err := f.Stat(t.Context(), h); err != nil || fi.Size != 1000 {
		t.Errorf("Stat of a corrupted file = (%+v, %v), want its real size", fi, err)
	}
	f.Reset()
	if got, err := backend.LoadAll(t.Context(), f, h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("after Reset the file still reads differently: %v", err)
	}
}

func TestFaultyTruncate(t *testing.T) {
	f := backendtest.NewFaulty(mem.New())
	h, data := saveData(t, f, backend.IndexFile, 6, 1000)
	f.Truncate(h, 600)
	if fi, err := f.Stat(t.Context(), h); err != nil || fi.Size != 600 {
		t.Fatalf("Stat of a truncated file = (%+v, %v), want size 600", fi, err)
	}
	var listed int64 = -1
	err := f.List(t.Context(), backend.IndexFile, func(fi backend.FileInfo) error { listed = fi.Size; return nil })
	if err != nil || listed != 600 {
		t.Fatalf("List shows size %d (%v), want 600", listed, err)
	}
	tests := []struct {
		length int
		offset int64
		want   []byte
		short  bool
	}{
		{0, 0, data[:600], false},
		{0, 100, data[100:600], false},
		{100, 500, data[500:600], false},
		{0, 600, nil, false},
		{10, 595, nil, true},
		{0, 601, nil, true},
	}
	for _, tc := range tests {
		got, err := loadRange(t, f, h, tc.length, tc.offset)
		if tc.short {
			if !errors.Is(err, backend.ErrShortRead) {
				t.Errorf("Load(%d, %d) past the truncated end = %v, want ErrShortRead", tc.length, tc.offset, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("Load(%d, %d) of a truncated file: %d bytes, %v; want %d bytes", tc.length, tc.offset, len(got), err, len(tc.want))
		}
	}
}

func TestFaultyVanish(t *testing.T) {
	inner := mem.New()
	f := backendtest.NewFaulty(inner)
	h, data := saveData(t, f, backend.SnapshotFile, 7, 100)
	f.Vanish(h)
	if _, err := f.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a vanished file = %v, want fs.ErrNotExist", err)
	}
	if _, err := loadRange(t, f, h, 0, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a vanished file = %v, want fs.ErrNotExist", err)
	}
	if err := f.Remove(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove of a vanished file = %v, want fs.ErrNotExist", err)
	}
	n := 0
	if err := f.List(t.Context(), backend.SnapshotFile, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("List shows %d files (%v), want the vanished one hidden", n, err)
	}
	if _, err := inner.Stat(t.Context(), h); err != nil {
		t.Errorf("Vanish touched the inner backend: %v", err)
	}
	if err := f.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat(t.Context(), h); err != nil {
		t.Errorf("a Save did not bring back a vanished file: %v", err)
	}
}

func TestFaultyVanishAfterList(t *testing.T) {
	f := backendtest.NewFaulty(mem.New())
	h, _ := saveData(t, f, backend.PackFile, 8, 100)
	other, _ := saveData(t, f, backend.PackFile, 9, 100)
	f.VanishAfterList(h)
	if _, err := f.Stat(t.Context(), h); err != nil {
		t.Fatalf("file vanished before any List: %v", err)
	}
	seen := map[string]bool{}
	if err := f.List(t.Context(), backend.PackFile, func(fi backend.FileInfo) error { seen[fi.Name] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !seen[h.Name] || !seen[other.Name] {
		t.Fatalf("the List before vanishing shows %v, want both files", seen)
	}
	if _, err := loadRange(t, f, h, 0, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load after the List = %v, want fs.ErrNotExist", err)
	}
	if _, err := loadRange(t, f, other, 0, 0); err != nil {
		t.Fatalf("Load of the other file: %v", err)
	}
}

func TestFaultyFilters(t *testing.T) {
	f := backendtest.NewFaulty(mem.New())
	h1, _ := saveData(t, f, backend.PackFile, 10, 100)
	h2, _ := saveData(t, f, backend.PackFile, 11, 100)
	errFlaky := errors.New("connection reset")
	// Two failures, then success: what a retry loop sees from a flaky server.
	f.Inject(backendtest.Fault{Op: backendtest.OpLoad, Name: h1.Name, Times: 2, Err: errFlaky})
	f.Inject(backendtest.Fault{Op: backendtest.OpList, Type: backend.IndexFile})
	for i, want := range []bool{true, true, false, false} {
		_, err := loadRange(t, f, h1, 0, 0)
		if got := errors.Is(err, errFlaky); got != want {
			t.Errorf("Load %d of the named file: %v, want failure %v", i+1, err, want)
		}
	}
	if _, err := loadRange(t, f, h2, 0, 0); err != nil {
		t.Errorf("Load of another name: %v", err)
	}
	if err := f.List(t.Context(), backend.IndexFile, func(backend.FileInfo) error { return nil }); !errors.Is(err, backendtest.ErrInjected) {
		t.Errorf("List(index) = %v, want ErrInjected", err)
	}
	if err := f.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { return nil }); err != nil {
		t.Errorf("List(data) = %v, want no fault", err)
	}
	if got := f.Calls(backendtest.OpLoad, backend.PackFile); got != 5 {
		t.Errorf("Calls(load, data) = %d, want 5", got)
	}
}

func TestRandom(t *testing.T) {
	a, b := backendtest.Random(1, 1000), backendtest.Random(1, 1000)
	if !bytes.Equal(a, b) {
		t.Error("Random is not deterministic")
	}
	if bytes.Equal(a, backendtest.Random(2, 1000)) {
		t.Error("different seeds give the same data")
	}
	if !bytes.Equal(backendtest.Random(1, 10), a[:10]) {
		t.Error("a shorter stream is not a prefix of a longer one")
	}
	if h := backendtest.HandleFor(backend.PackFile, []byte("foobar")); h.Name != "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2" {
		t.Errorf("HandleFor names foobar %s", h.Name)
	}
}
