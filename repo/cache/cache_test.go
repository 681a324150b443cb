package cache_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo/cache"
)

const repoID = "aaefcffd6371fdd48d84c50e6ce7973aea19a1a4c5a07ed17c83746221f267c0"

func name(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// The cache is a backend too: it must pass the conformance suite.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		c, err := cache.Wrap(mem.New(), t.TempDir(), repoID)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

func TestServesFromCache(t *testing.T) {
	ctx := context.Background()
	under := mem.New()
	dir := t.TempDir()
	c, err := cache.Wrap(under, dir, repoID)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("snapshot bytes")
	h := backend.Handle{Type: backend.SnapshotFile, Name: name(data)}
	if err := under.Save(ctx, h, backend.NewByteReader(data, false)); err != nil {
		t.Fatal(err)
	}
	got, err := backend.LoadAll(ctx, c, h)
	if err != nil || string(got) != string(data) {
		t.Fatalf("first load %q %v", got, err)
	}
	cached := filepath.Join(c.Dir(), "snapshots", h.Name)
	if _, err := os.Stat(cached); err != nil {
		t.Fatalf("not cached: %v", err)
	}
	// Served from the cache even after the repository lost it.
	_ = under.Remove(ctx, h)
	var part []byte
	err = c.Load(ctx, h, 4, 2, func(rd io.Reader) error { part, err = io.ReadAll(rd); return err })
	if err != nil || string(part) != "apsh" {
		t.Fatalf("ranged load from cache %q %v", part, err)
	}
	// Listing drops cached copies of files that are gone.
	if err := c.List(ctx, backend.SnapshotFile, func(backend.FileInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cached); !os.IsNotExist(err) {
		t.Fatalf("stale cache entry kept: %v", err)
	}
	// A file whose content does not match its name is never cached.
	bad := backend.Handle{Type: backend.IndexFile, Name: name([]byte("other"))}
	_ = under.Save(ctx, bad, backend.NewByteReader([]byte("mismatch"), false))
	if got, err := backend.LoadAll(ctx, c, bad); err != nil || string(got) != "mismatch" {
		t.Fatalf("load mismatching file: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), "index", bad.Name)); !os.IsNotExist(err) {
		t.Fatal("mismatching file was cached")
	}
	// Data packs are never cached; tree packs are.
	pack := []byte("pack")
	ph := backend.Handle{Type: backend.PackFile, Name: name(pack)}
	_ = under.Save(ctx, ph, backend.NewByteReader(pack, false))
	_, _ = backend.LoadAll(ctx, c, ph)
	if _, err := os.Stat(filepath.Join(c.Dir(), "data", ph.Name[:2], ph.Name)); !os.IsNotExist(err) {
		t.Fatal("data pack cached")
	}
	ph.IsMetadata = true
	_, _ = backend.LoadAll(ctx, c, ph)
	if _, err := os.Stat(filepath.Join(c.Dir(), "data", ph.Name[:2], ph.Name)); err != nil {
		t.Fatalf("tree pack not cached: %v", err)
	}
}
