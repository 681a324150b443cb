package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
)

// workers is how many goroutines the concurrency tests run at once: more
// than any backend's Connections, to show that callers going over the
// advertised number still get correct results.
const workers = 8

// loadErr is load for goroutines other than the test's: it returns an error
// instead of calling t.Fatal.
func loadErr(t *testing.T, be backend.Backend, h backend.Handle, length int, offset int64) ([]byte, error) {
	var buf []byte
	err := be.Load(t.Context(), h, length, offset, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		buf = b
		return err
	})
	return buf, err
}

// roundTrip saves data under h and checks it with Stat, Load, a ranged Load
// and a List, returning the first problem.
func roundTrip(t *testing.T, be backend.Backend, h backend.Handle, data []byte) error {
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, true)); err != nil {
		return fmt.Errorf("save %v: %w", h, err)
	}
	fi, err := be.Stat(t.Context(), h)
	if err != nil {
		return fmt.Errorf("stat %v: %w", h, err)
	}
	if fi.Size != int64(len(data)) {
		return fmt.Errorf("stat %v: size %d, want %d", h, fi.Size, len(data))
	}
	got, err := loadErr(t, be, h, 0, 0)
	if err != nil {
		return fmt.Errorf("load %v: %w", h, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("load %v: wrong data (%s)", h, firstDiff(got, data))
	}
	half := len(data) / 2
	got, err = loadErr(t, be, h, len(data)-half, int64(half))
	if err != nil {
		return fmt.Errorf("ranged load %v: %w", h, err)
	}
	if !bytes.Equal(got, data[half:]) {
		return fmt.Errorf("ranged load %v: wrong data", h)
	}
	seen := false
	err = be.List(t.Context(), h.Type, func(fi backend.FileInfo) error {
		if fi.Name == h.Name {
			seen = true
			if fi.Size != int64(len(data)) {
				return fmt.Errorf("list %v: %s has size %d, want %d", h.Type, h.Name, fi.Size, len(data))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %v: %w", h.Type, err)
	}
	if !seen {
		return fmt.Errorf("list %v does not show %s after its Save returned", h.Type, h.Name)
	}
	return nil
}

func testConcurrentUse(t *testing.T, be backend.Backend) {
	const files = 48
	var mu sync.Mutex
	want := make(map[backend.FileType]map[string]int64)
	var handles []backend.Handle

	g := new(errgroup.Group)
	g.SetLimit(workers)
	for i := range files {
		ft := listTypes[i%len(listTypes)]
		size := 1000 + (i*7919)%(200<<10)
		if ft == backend.PackFile {
			size += 1 << 20
		}
		g.Go(func() error {
			data := Random(uint64(700+i), size)
			h := HandleFor(ft, data)
			if err := roundTrip(t, be, h, data); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if want[ft] == nil {
				want[ft] = make(map[string]int64)
			}
			want[ft][h.Name] = int64(size)
			handles = append(handles, h)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, ft := range listTypes {
		checkList(t, be, ft, want[ft])
	}

	// Remove everything while other goroutines keep listing.
	g = new(errgroup.Group)
	g.SetLimit(workers)
	for i, h := range handles {
		g.Go(func() error {
			if err := be.Remove(t.Context(), h); err != nil {
				return fmt.Errorf("remove %v: %w", h, err)
			}
			if i%4 != 0 {
				return nil
			}
			return be.List(t.Context(), h.Type, func(fi backend.FileInfo) error {
				if fi.Name == h.Name {
					return fmt.Errorf("list %v shows %s after its Remove returned", h.Type, h.Name)
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, ft := range listTypes {
		checkList(t, be, ft, nil)
	}
}

// testConcurrentConfigSaves races several Saves of the config against
// readers. Every read must see either no file or one complete version, never
// a mix, and the final content must be one of the versions.
func testConcurrentConfigSaves(t *testing.T, be backend.Backend) {
	const writers = 6
	h := backend.Handle{Type: backend.ConfigFile}
	versions := make([][]byte, writers)
	for i := range versions {
		versions[i] = Random(uint64(800+i), 256<<10+i)
	}
	isVersion := func(b []byte) bool {
		for _, v := range versions {
			if bytes.Equal(b, v) {
				return true
			}
		}
		return false
	}

	g := new(errgroup.Group)
	g.SetLimit(workers)
	for _, v := range versions {
		g.Go(func() error {
			if err := be.Save(t.Context(), h, backend.NewByteReader(v, true)); err != nil {
				t.Logf("concurrent Save(config) refused: %v", err)
			}
			return nil
		})
	}
	for range workers - 2 {
		g.Go(func() error {
			for range 10 {
				got, err := loadErr(t, be, h, 0, 0)
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					return fmt.Errorf("load config during concurrent saves: %w", err)
				case !isVersion(got):
					return fmt.Errorf("load config during concurrent saves returned %d bytes matching no saved version", len(got))
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	got := load(t, be, h, 0, 0)
	if !isVersion(got) {
		t.Fatalf("after concurrent saves config holds %d bytes matching no saved version", len(got))
	}
}

// testSecrets checks that Location and the errors of failed operations do
// not reveal a password containing PasswordMarker.
func testSecrets(t *testing.T, be backend.Backend) {
	loc := be.Location()
	if loc == "" {
		t.Error("Location() is empty")
	}
	if strings.Contains(loc, PasswordMarker) {
		t.Errorf("Location() = %q reveals the password", loc)
	}
	if be.Connections() < 1 {
		t.Errorf("Connections() = %d, want at least 1", be.Connections())
	}
	missing := HandleFor(backend.PackFile, []byte("missing"))
	data := Random(900, 100)
	present := saveNew(t, be, backend.IndexFile, data)
	_, statErr := be.Stat(t.Context(), missing)
	errs := []error{
		statErr,
		be.Load(t.Context(), missing, 0, 0, drain),
		be.Load(t.Context(), present, 10, 95, drain),
		be.Remove(t.Context(), missing),
		be.List(t.Context(), backend.InvalidFile, func(backend.FileInfo) error { return nil }),
		be.Save(t.Context(), HandleFor(backend.PackFile, data), &failingReader{data: data, failAt: 50, err: errReader}),
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("operation %d unexpectedly succeeded", i)
			continue
		}
		if strings.Contains(err.Error(), PasswordMarker) {
			t.Errorf("error %q reveals the password", err)
		}
	}
}
