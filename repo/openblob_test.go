package repo

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
)

func TestOpenBlob(t *testing.T) {
	r, _ := initMem(t, 2, Options{})
	plain := bytes.Repeat([]byte("cairn open blob "), 500)
	h := blob.Handle{ID: blob.Hash(plain), Type: blob.DataBlob}
	zplain := compress(zstd.SpeedDefault, nil, plain)
	ulen := uint32(len(plain))
	seal := func(k *crypto.Key, p []byte) []byte { return k.Seal(nil, p) }

	t.Run("uncompressed in place", func(t *testing.T) {
		sealed := seal(r.Key(), plain)
		got, err := r.OpenBlob(h, sealed, 0, nil)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("got %d bytes, %v", len(got), err)
		}
		if &got[0] != &sealed[0] {
			t.Error("without dst the plaintext should reuse sealed's memory")
		}
	})
	t.Run("into dst", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			sealed []byte
			ulen   uint32
		}{
			{"uncompressed", seal(r.Key(), plain), 0},
			{"compressed", seal(r.Key(), zplain), ulen},
		} {
			dst := make([]byte, 7, len(plain)+100)
			got, err := r.OpenBlob(h, tc.sealed, tc.ulen, dst)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s: got %d bytes, %v", tc.name, len(got), err)
			}
			if &got[0] != &dst[0] {
				t.Errorf("%s: the plaintext should be in dst's memory", tc.name)
			}
		}
	})

	flipped := seal(r.Key(), plain)
	flipped[len(flipped)-1] ^= 1
	other := blob.Handle{ID: blob.Hash([]byte("something else")), Type: blob.TreeBlob}
	for _, tc := range []struct {
		name   string
		h      blob.Handle
		sealed []byte
		ulen   uint32
		step   BlobStep
		cause  error
		msg    string
	}{
		{"wrong key", h, seal(crypto.NewRandomKey(), plain), 0, BlobDecrypt, crypto.ErrUnauthenticated, "decrypt blob <data/"},
		{"bad MAC", h, flipped, 0, BlobDecrypt, crypto.ErrUnauthenticated, "ciphertext verification failed"},
		{"short box", h, []byte("short"), 0, BlobDecrypt, crypto.ErrUnauthenticated, "shorter than"},
		{"wrong hash", other, seal(r.Key(), plain), 0, BlobVerify, nil, "wrong data returned, hash is " + h.ID.Str()},
		{"compressed but indexed as not", h, seal(r.Key(), zplain), 0, BlobVerify, nil, "wrong data returned"},
		{"bad zstd", h, seal(r.Key(), []byte("definitely not a zstd frame")), ulen, BlobDecompress, nil, "decompress blob <data/"},
		{"length too long", h, seal(r.Key(), zplain), ulen + 1, BlobDecompress, nil, "index says " + strconv.Itoa(int(ulen)+1)},
		{"length too short", h, seal(r.Key(), zplain), ulen - 1, BlobDecompress, nil, "index says " + strconv.Itoa(int(ulen)-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.OpenBlob(tc.h, tc.sealed, tc.ulen, nil)
			var be *BlobError
			if !errors.As(err, &be) {
				t.Fatalf("got %d bytes, err %v; want a *BlobError", len(got), err)
			}
			if got != nil {
				t.Error("a failed open returned data")
			}
			if be.Step != tc.step || be.Handle != tc.h {
				t.Errorf("step %q handle %v, want %q %v", be.Step, be.Handle, tc.step, tc.h)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("%v does not wrap %v", err, tc.cause)
			}
			if tc.name == "wrong hash" && be.Hash != h.ID {
				t.Errorf("hash %v, want the plaintext's %v", be.Hash, h.ID)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}
