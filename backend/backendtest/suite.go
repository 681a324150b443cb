package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// PasswordMarker is a string that backends taking a password should put into
// the password of the backend they hand to Run. The "Secrets" subtest fails
// if Location or an error message contains it.
const PasswordMarker = "cairn-test-secret-7f3a9c"

// allTypes is every file type, config included, in the order the subtests
// walk them.
var allTypes = []backend.FileType{
	backend.ConfigFile, backend.KeyFile, backend.LockFile,
	backend.SnapshotFile, backend.IndexFile, backend.PackFile,
}

// listTypes is every type List accepts (everything but config).
var listTypes = []backend.FileType{
	backend.KeyFile, backend.LockFile, backend.SnapshotFile,
	backend.IndexFile, backend.PackFile,
}

// Run runs the conformance suite against the backends newBackend makes.
// newBackend must return a fresh, empty backend that is already created
// (directories or bucket exist) and register its Close with t.Cleanup; it is
// called once per subtest with that subtest's t. Subtests are named after the
// behaviour they check, so one can be rerun alone with
// -run 'TestConformance/RangedLoad'.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, be backend.Backend)
	}{
		{"Empty", testEmpty},
		{"SaveLoadEveryType", testSaveLoadEveryType},
		{"ZeroLength", testZeroLength},
		{"LargeFile", testLargeFile},
		{"SaveFromFile", testSaveFromFile},
		{"RangedLoad", testRangedLoad},
		{"RandomRanges", testRandomRanges},
		{"InvalidRange", testInvalidRange},
		{"Missing", testMissing},
		{"LoadCallbackError", testLoadCallbackError},
		{"LoadPartialConsumption", testLoadPartialConsumption},
		{"StatSizes", testStatSizes},
		{"IsMetadataIgnored", testIsMetadataIgnored},
		{"ListByType", testListByType},
		{"ListPackSubdirs", testListPackSubdirs},
		{"ListStopsOnError", testListStopsOnError},
		{"ListCancelled", testListCancelled},
		{"Remove", testRemove},
		{"SaveReaderFails", testSaveReaderFails},
		{"SaveReaderFailsKeepsOld", testSaveReaderFailsKeepsOld},
		{"SaveShortReader", testSaveShortReader},
		{"SaveCancelledBefore", testSaveCancelledBefore},
		{"SaveCancelledDuring", testSaveCancelledDuring},
		{"SaveConfigTwice", testSaveConfigTwice},
		{"SaveExistingPack", testSaveExistingPack},
		{"HostileNames", testHostileNames},
		{"Create", testCreate},
		{"ConcurrentUse", testConcurrentUse},
		{"ConcurrentConfigSaves", testConcurrentConfigSaves},
		{"Secrets", testSecrets},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend(t)
			if be == nil {
				t.Fatal("newBackend returned nil")
			}
			tc.fn(t, be)
		})
	}
}

// save stores data under h and fails the test on error.
func save(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, true)); err != nil {
		t.Fatalf("Save(%v, %d bytes): %v", h, len(data), err)
	}
}

// saveNew stores data under the handle HandleFor gives and returns it.
func saveNew(t *testing.T, be backend.Backend, ft backend.FileType, data []byte) backend.Handle {
	t.Helper()
	h := HandleFor(ft, data)
	save(t, be, h, data)
	return h
}

// load reads length bytes at offset from h and fails the test on error.
func load(t *testing.T, be backend.Backend, h backend.Handle, length int, offset int64) []byte {
	t.Helper()
	var buf []byte
	err := be.Load(t.Context(), h, length, offset, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		buf = b
		return err
	})
	if err != nil {
		t.Fatalf("Load(%v, length %d, offset %d): %v", h, length, offset, err)
	}
	return buf
}

// checkContent fails the test unless h holds exactly want, by Load and Stat.
func checkContent(t *testing.T, be backend.Backend, h backend.Handle, want []byte) {
	t.Helper()
	got := load(t, be, h, 0, 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("Load(%v) returned %d bytes that differ from the %d saved (%s)", h, len(got), len(want), firstDiff(got, want))
	}
	fi, err := be.Stat(t.Context(), h)
	if err != nil {
		t.Fatalf("Stat(%v): %v", h, err)
	}
	if fi.Size != int64(len(want)) {
		t.Fatalf("Stat(%v).Size = %d, want %d", h, fi.Size, len(want))
	}
}

// firstDiff describes where two byte slices first differ.
func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	for i := range n {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	if len(got) != len(want) {
		return "one is a prefix of the other"
	}
	return "equal"
}

// checkNotExist fails the test unless Stat and Load of h report
// fs.ErrNotExist, and List (for non-config handles) does not show it.
func checkNotExist(t *testing.T, be backend.Backend, h backend.Handle) {
	t.Helper()
	if fi, err := be.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(%v) = (%+v, %v), want an error wrapping fs.ErrNotExist", h, fi, err)
	}
	called := false
	err := be.Load(t.Context(), h, 0, 0, func(io.Reader) error { called = true; return nil })
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(%v) = %v, want an error wrapping fs.ErrNotExist", h, err)
	}
	if called {
		t.Fatalf("Load(%v) called fn for a missing file", h)
	}
	if h.Type == backend.ConfigFile {
		return
	}
	if size, ok := listAll(t, be, h.Type)[h.Name]; ok {
		t.Fatalf("List(%v) shows %s (%d bytes), which must not exist", h.Type, h.Name, size)
	}
}

// listAll lists type ft and returns name → size. It fails the test on an
// error, a name that is not a lowercase hex ID, or a name listed twice.
func listAll(t *testing.T, be backend.Backend, ft backend.FileType) map[string]int64 {
	t.Helper()
	got := make(map[string]int64)
	err := be.List(t.Context(), ft, func(fi backend.FileInfo) error {
		if !backend.IsValidName(fi.Name) {
			t.Errorf("List(%v) reported %q, which is not a 64-character lowercase hex name", ft, fi.Name)
		}
		if _, dup := got[fi.Name]; dup {
			t.Errorf("List(%v) reported %s twice", ft, fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%v): %v", ft, err)
	}
	return got
}

// checkList fails the test unless List(ft) reports exactly want (name → size).
func checkList(t *testing.T, be backend.Backend, ft backend.FileType, want map[string]int64) {
	t.Helper()
	got := listAll(t, be, ft)
	for name, size := range want {
		gotSize, ok := got[name]
		switch {
		case !ok:
			t.Errorf("List(%v) misses %s", ft, name)
		case gotSize != size:
			t.Errorf("List(%v) reports %s with %d bytes, want %d", ft, name, gotSize, size)
		}
	}
	for name, size := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("List(%v) reports unexpected %s (%d bytes)", ft, name, size)
		}
	}
}
