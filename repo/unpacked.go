package repo

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Unpacked files (index, snapshot, lock) are single sealed boxes. In v2
// repositories the plaintext is a version byte 0x02 followed by zstd-compressed
// JSON; a plaintext starting with '{' or '[' is raw JSON (older writers).
const unpackedCompressed = 2

// encodeUnpacked turns JSON into the sealed bytes of an unpacked file.
func (r *Repository) encodeUnpacked(plain []byte) []byte {
	if r.cfg.Version >= 2 {
		// restic compresses these files in v2 even with --compression off.
		buf := make([]byte, 1, len(plain)/2+64)
		buf[0] = unpackedCompressed
		plain = compress(CompressionAuto.level(), buf, plain)
	}
	return r.key.Seal(nil, plain)
}

// decodeUnpacked opens the sealed bytes of an unpacked file.
func (r *Repository) decodeUnpacked(sealed []byte) ([]byte, error) {
	plain, err := r.key.OpenInPlace(sealed)
	if err != nil {
		return nil, err
	}
	if len(plain) == 0 {
		return plain, nil
	}
	switch plain[0] {
	case '{', '[':
		return plain, nil
	case unpackedCompressed:
		if r.cfg.Version < 2 {
			return nil, fmt.Errorf("compressed file in a version %d repository", r.cfg.Version)
		}
		return decompress(nil, plain[1:], 0)
	}
	return nil, fmt.Errorf("unsupported encoding format %#x", plain[0])
}

// SaveUnpacked stores plaintext JSON as a new file of type t (index,
// snapshot or lock) and returns its ID, the SHA-256 of the stored bytes.
func (r *Repository) SaveUnpacked(ctx context.Context, t backend.FileType, plain []byte) (blob.ID, error) {
	if t == backend.PackFile || t == backend.KeyFile || t == backend.ConfigFile {
		return blob.ID{}, fmt.Errorf("save %s: not an unpacked file type", t)
	}
	sealed := r.encodeUnpacked(plain)
	id := blob.ID(sha256.Sum256(sealed))
	h := backend.Handle{Type: t, Name: id.String()}
	if err := r.be.Save(ctx, h, backend.NewByteReader(sealed, false)); err != nil {
		return blob.ID{}, fmt.Errorf("save %s %s: %w", t, id.Str(), err)
	}
	return id, nil
}

// LoadUnpacked loads, verifies (the name must be the SHA-256 of the content,
// and the MAC must match) and decodes the file t/id.
func (r *Repository) LoadUnpacked(ctx context.Context, t backend.FileType, id blob.ID) ([]byte, error) {
	h := backend.Handle{Type: t, Name: id.String()}
	var sealed []byte
	var err error
	// A mismatching hash may be a flaky read: try once more, like restic.
	for attempt := 0; attempt < 2; attempt++ {
		sealed, err = backend.LoadAll(ctx, r.be, h)
		if err != nil {
			return nil, fmt.Errorf("load %s %s: %w", t, id.Str(), err)
		}
		if blob.ID(sha256.Sum256(sealed)) == id {
			break
		}
		err = fmt.Errorf("load %s %s: content does not match its name (damaged file)", t, id.Str())
	}
	if err != nil {
		return nil, err
	}
	plain, err := r.decodeUnpacked(sealed)
	if err != nil {
		return nil, fmt.Errorf("load %s %s: %w", t, id.Str(), err)
	}
	return plain, nil
}

// List calls fn with the ID of every file of type t. Names that are not IDs
// are skipped.
func (r *Repository) List(ctx context.Context, t backend.FileType, fn func(id blob.ID, size int64) error) error {
	return r.be.List(ctx, t, func(fi backend.FileInfo) error {
		id, err := blob.ParseID(fi.Name)
		if err != nil {
			return nil
		}
		return fn(id, fi.Size)
	})
}
