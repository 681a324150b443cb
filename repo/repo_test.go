package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
)

var testKey = KeyOptions{Username: "tester", Hostname: "testhost", Params: &crypto.TestParams}

func initMem(t *testing.T, version uint, opts Options) (*Repository, *mem.Backend) {
	t.Helper()
	be := mem.New()
	r, err := Init(context.Background(), be, "secret", InitOptions{Version: version, Key: testKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

func TestInitOpen(t *testing.T) {
	ctx := context.Background()
	for _, v := range []uint{1, 2} {
		r, be := initMem(t, v, Options{})
		if r.Config().Version != v {
			t.Fatalf("version %d", r.Config().Version)
		}
		r2, err := Open(ctx, be, "secret", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r2.Config() != r.Config() || *r2.Key() != *r.Key() && r2.Key().Encrypt != r.Key().Encrypt {
			t.Fatal("reopened repository differs")
		}
		if _, err := Open(ctx, be, "wrong", Options{}); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := Init(ctx, be, "secret", InitOptions{Key: testKey}, Options{}); err == nil {
			t.Fatal("init over an existing repository succeeded")
		}
	}
	if _, err := Open(ctx, mem.New(), "secret", Options{}); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("empty location: %v", err)
	}
}

func TestInitRefusesSnapshotsWithoutConfig(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	name := blob.Hash([]byte("x")).String()
	if err := be.Save(ctx, backend.Handle{Type: backend.SnapshotFile, Name: name}, backend.NewByteReader([]byte("x"), false)); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, be, "secret", InitOptions{Key: testKey}, Options{}); err == nil {
		t.Fatal("init into a location with snapshots succeeded")
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	r, be := initMem(t, 2, Options{})
	id2, err := r.AddKey(ctx, "second", testKey)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, be, "second", Options{})
	if err != nil || r2.KeyID() != id2 {
		t.Fatalf("open with second key: %v", err)
	}
	keys, err := r.Keys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v %v", keys, err)
	}
	if err := r.RemoveKey(ctx, r.KeyID()); err == nil {
		t.Fatal("removed the current key")
	}
	if err := r.RemoveKey(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, "second", Options{}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("removed key still opens: %v", err)
	}
	if _, err := r.ChangePassword(ctx, "third", testKey); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, "secret", Options{}); !errors.Is(err, ErrWrongPassword) {
		t.Fatal("old password still opens after passwd")
	}
	if _, err := Open(ctx, be, "third", Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestBlobWriterRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		version uint
		comp    Compression
	}{{1, CompressionAuto}, {2, CompressionAuto}, {2, CompressionOff}, {2, CompressionMax}, {2, CompressionFastest}} {
		t.Run(fmt.Sprintf("v%d-%s", tc.version, tc.comp), func(t *testing.T) {
			r, be := initMem(t, tc.version, Options{Compression: tc.comp, PackSize: MinPackSize})
			w, err := r.NewBlobWriter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var blobs [][]byte
			for i := 0; i < 300; i++ {
				var data []byte
				if i%2 == 0 {
					data = bytes.Repeat([]byte(fmt.Sprintf("text %d ", i)), 3000+i)
				} else {
					data = make([]byte, 40000+i)
					copy(data, crypto.NewSalt())
					for j := 64; j < len(data); j++ {
						data[j] = byte(j*7919 + i*31 + j*j)
					}
				}
				blobs = append(blobs, data)
				typ := blob.DataBlob
				if i%10 == 0 {
					typ = blob.TreeBlob
				}
				isNew, err := w.SaveBlob(ctx, typ, data, blob.ID{})
				if err != nil || !isNew {
					t.Fatalf("save %d: %v %v", i, isNew, err)
				}
				if again, err := w.SaveBlob(ctx, typ, data, blob.ID{}); err != nil || again {
					t.Fatalf("duplicate save %d stored again: %v", i, err)
				}
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			if st.DataBlobs != 270 || st.TreeBlobs != 30 {
				t.Fatalf("stats %+v", st)
			}
			r2, err := Open(ctx, be, "secret", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r2.LoadIndex(ctx, nil); err != nil {
				t.Fatal(err)
			}
			for i, data := range blobs {
				typ := blob.DataBlob
				if i%10 == 0 {
					typ = blob.TreeBlob
				}
				got, err := r2.LoadBlob(ctx, typ, blob.Hash(data), nil)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("blob %d: %v", i, err)
				}
				locs := r2.Index().Lookup(blob.Handle{ID: blob.Hash(data), Type: typ})
				compressed := locs[0].IsCompressed()
				if tc.version == 1 && compressed {
					t.Fatalf("blob %d compressed in a v1 repository", i)
				}
				if tc.version == 2 && typ == blob.TreeBlob && !compressed {
					t.Fatalf("tree blob %d not compressed in v2", i)
				}
				if tc.version == 2 && tc.comp == CompressionOff && typ == blob.DataBlob && compressed {
					t.Fatalf("data blob %d compressed with compression off", i)
				}
			}
			// Packs hold one blob type only.
			types := map[blob.ID]blob.Type{}
			r2.Index().Each(func(l index.Location) bool {
				if old, ok := types[l.Pack]; ok && old != l.Type {
					t.Errorf("pack %s mixes blob types", l.Pack.Str())
				}
				types[l.Pack] = l.Type
				return true
			})
		})
	}
}

func TestLoadBlobDamage(t *testing.T) {
	ctx := context.Background()
	r, be := initMem(t, 2, Options{})
	w, _ := r.NewBlobWriter(ctx)
	data := []byte("some file content")
	if _, err := w.SaveBlob(ctx, blob.DataBlob, data, blob.ID{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loc := r.Index().Lookup(blob.Handle{ID: blob.Hash(data), Type: blob.DataBlob})[0]
	h := backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}
	raw, err := backend.LoadAll(ctx, be, h)
	if err != nil {
		t.Fatal(err)
	}
	raw[loc.Offset+20] ^= 1
	_ = be.Remove(ctx, h)
	if err := be.Save(ctx, h, backend.NewByteReader(raw, false)); err != nil {
		t.Fatal(err)
	}
	_, err = r.LoadBlob(ctx, blob.DataBlob, blob.Hash(data), nil)
	if err == nil || !errors.Is(err, crypto.ErrUnauthenticated) {
		t.Fatalf("damaged blob: %v", err)
	}
	if _, err := r.LoadBlob(ctx, blob.DataBlob, blob.Hash([]byte("other")), nil); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("unknown blob: %v", err)
	}
}
