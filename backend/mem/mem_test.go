package mem_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		be := mem.New()
		t.Cleanup(func() { _ = be.Close() })
		return be
	})
}

// TestSaveCopiesData checks that the caller may reuse its buffer after Save:
// the pipelines recycle pack buffers.
func TestSaveCopiesData(t *testing.T) {
	be := mem.New()
	buf := []byte("original content")
	h := backendtest.HandleFor(backend.PackFile, buf)
	if err := be.Save(t.Context(), h, backend.NewByteReader(buf, false)); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXX")
	got, err := backend.LoadAll(t.Context(), be, h)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "original content" {
		t.Fatalf("stored data changed with the caller's buffer: %q", got)
	}
}

// TestLoadCannotModify checks that what Load hands out cannot change the
// stored file, even if the callback scribbles over what it read.
func TestLoadCannotModify(t *testing.T) {
	be := mem.New()
	data := backendtest.Random(1, 100)
	h := backendtest.HandleFor(backend.IndexFile, data)
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatal(err)
	}
	err := be.Load(t.Context(), h, 0, 0, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		for i := range b {
			b[i] = 0
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := backend.LoadAll(t.Context(), be, h)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("a Load callback changed the stored file")
	}
}

// TestInstancesAreSeparate checks that two backends share nothing.
func TestInstancesAreSeparate(t *testing.T) {
	a, b := mem.New(), mem.New()
	if a.Location() == b.Location() {
		t.Errorf("two instances share the location %q", a.Location())
	}
	h := backend.Handle{Type: backend.ConfigFile}
	if err := a.Save(t.Context(), h, backend.NewByteReader([]byte("a"), false)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(t.Context(), h); err == nil {
		t.Fatal("a file saved in one instance is visible in another")
	}
}
