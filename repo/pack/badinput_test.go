package pack_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/fixtures"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// resticPacks returns the packs restic 0.19.1 wrote for the golden v2
// repository (testdata/golden), its master key and its index, all taken
// from the archive and the manifest that lists every plaintext.
func resticPacks(tb testing.TB) (packs map[string][]byte, key *crypto.Key, idx *index.File) {
	tb.Helper()
	td, err := fixtures.TestdataDir()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := fixtures.Extract(filepath.Join(td, "golden", "restic-0.19.1-golden-repos.tar.gz"), dir); err != nil {
		tb.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(td, "golden", "golden-manifest.md"))
	if err != nil {
		tb.Fatal(err)
	}
	// The v2 section comes first: its master key, then its index.
	mk := regexp.MustCompile("(?s)### master key[^\n]*\n```json\n(.*?)\n```").FindSubmatch(manifest)
	ix := regexp.MustCompile("(?s)### index [0-9a-f]{64}[^\n]*\n```json\n(.*?)\n```").FindSubmatch(manifest)
	if mk == nil || ix == nil {
		tb.Fatal("golden manifest: master key or index not found")
	}
	key = new(crypto.Key)
	if err := json.Unmarshal(mk[1], key); err != nil {
		tb.Fatal(err)
	}
	if idx, _, err = index.Decode(ix[1]); err != nil {
		tb.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "v2", "data", "*", "*"))
	packs = map[string][]byte{}
	for _, f := range files {
		if packs[filepath.Base(f)], err = os.ReadFile(f); err != nil {
			tb.Fatal(err)
		}
	}
	if len(packs) != 2 {
		tb.Fatalf("%d packs in the golden v2 repository, want 2", len(packs))
	}
	return packs, key, idx
}

// TestReadHeaderResticPackDamage reads restic's own packs whole, cut at
// every length, and with every byte flipped. Whole, the header lists
// exactly the blobs of restic's index. Cut short, or with a flipped byte in
// the header or its length, it is an error wrapping pack.ErrInvalidPack,
// never a panic and never a wrong list. A flipped byte in the blob data
// leaves the header readable (the blob's own MAC catches it later).
func TestReadHeaderResticPackDamage(t *testing.T) {
	packs, key, idx := resticPacks(t)
	for name, data := range packs {
		i := slices.IndexFunc(idx.Packs, func(p index.PackEntry) bool { return p.ID.String() == name })
		if i < 0 {
			t.Fatalf("pack %s is not in the index", name[:8])
		}
		want := idx.Packs[i].PackBlobs()
		got, err := pack.ReadHeader(bytes.NewReader(data), int64(len(data)), key)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("pack %s: header %+v, %v\nwant the index's %+v", name[:8], got, err, want)
		}
		dataEnd := int64(0)
		for _, b := range want {
			dataEnd = max(dataEnd, int64(b.Offset)+int64(b.Length))
		}

		for n := range len(data) {
			cut := data[:n]
			if blobs, err := pack.ReadHeader(bytes.NewReader(cut), int64(n), key); err == nil || !errors.Is(err, pack.ErrInvalidPack) {
				t.Errorf("pack %s cut to %d bytes: %d blobs, %v; want ErrInvalidPack", name[:8], n, len(blobs), err)
			}
		}
		for pos := range len(data) {
			flipped := bytes.Clone(data)
			flipped[pos] ^= 0x01
			blobs, err := pack.ReadHeader(bytes.NewReader(flipped), int64(len(flipped)), key)
			switch {
			case int64(pos) < dataEnd:
				if err != nil || !slices.Equal(blobs, want) {
					t.Errorf("pack %s, data byte %d flipped: %v; the header must still read", name[:8], pos, err)
				}
			case err == nil || !errors.Is(err, pack.ErrInvalidPack):
				t.Errorf("pack %s, header byte %d flipped: %d blobs, %v; want ErrInvalidPack", name[:8], pos, len(blobs), err)
			}
		}
	}
}

// FuzzReadResticPack mutates restic's own packs, read with the key that
// wrote them, so the fuzzer starts past the MAC. Whatever ReadHeader
// accepts must describe blobs that lie inside the pack's data region.
func FuzzReadResticPack(f *testing.F) {
	packs, key, _ := resticPacks(f)
	for _, data := range packs {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		blobs, err := pack.ReadHeader(bytes.NewReader(data), int64(len(data)), key)
		if err != nil {
			return
		}
		for _, b := range blobs {
			if int64(b.Offset)+int64(b.Length) > int64(len(data)) {
				t.Fatalf("blob %v at %d+%d lies outside a %d-byte pack", b.Handle, b.Offset, b.Length, len(data))
			}
		}
	})
}
