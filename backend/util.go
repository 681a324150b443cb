package backend

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
)

// ByteReader is a RewindReader over a byte slice.
type ByteReader struct {
	*bytes.Reader
	buf  []byte
	hash []byte
}

// NewByteReader returns a RewindReader over buf. If withMD5 is set it computes
// the MD5 of buf up front (for backends that send Content-MD5).
func NewByteReader(buf []byte, withMD5 bool) *ByteReader {
	r := &ByteReader{Reader: bytes.NewReader(buf), buf: buf}
	if withMD5 {
		sum := md5.Sum(buf)
		r.hash = sum[:]
	}
	return r
}

// Rewind starts over.
func (r *ByteReader) Rewind() error { _, err := r.Seek(0, io.SeekStart); return err }

// Length returns len(buf).
func (r *ByteReader) Length() int64 { return int64(len(r.buf)) }

// Hash returns the MD5 computed by NewByteReader, or nil.
func (r *ByteReader) Hash() []byte { return r.hash }

// FileReader is a RewindReader over the first length bytes of an open file.
type FileReader struct {
	f      *os.File
	length int64
	hash   []byte
	sr     *io.SectionReader
}

// NewFileReader returns a RewindReader for f; md5sum may be nil.
func NewFileReader(f *os.File, length int64, md5sum []byte) *FileReader {
	return &FileReader{f: f, length: length, hash: md5sum, sr: io.NewSectionReader(f, 0, length)}
}

func (r *FileReader) Read(p []byte) (int, error) { return r.sr.Read(p) }

// Rewind starts over.
func (r *FileReader) Rewind() error { _, err := r.sr.Seek(0, io.SeekStart); return err }

// Length returns the number of bytes the reader yields.
func (r *FileReader) Length() int64 { return r.length }

// Hash returns the MD5 given to NewFileReader, or nil.
func (r *FileReader) Hash() []byte { return r.hash }

// File returns the underlying file (backends may use it for copy_file_range).
func (r *FileReader) File() *os.File { return r.f }

// IsValidName reports whether name is a 64-character lowercase hex ID, the only
// names List reports. Temporary files fail this test.
func IsValidName(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// Path returns h's slash-separated path in restic's default layout below the
// root prefix: "config", "keys/<name>", "data/<name[:2]>/<name>", ...
func Path(prefix string, h Handle) string {
	switch h.Type {
	case ConfigFile:
		return path.Join(prefix, "config")
	case PackFile:
		sub := h.Name
		if len(sub) > 2 {
			sub = sub[:2]
		}
		return path.Join(prefix, "data", sub, h.Name)
	}
	return path.Join(prefix, h.Type.Dir(), h.Name)
}

// Dirs returns every directory of restic's default layout below prefix, the
// 256 data/XX directories included, parents before children.
func Dirs(prefix string) []string {
	dirs := []string{prefix}
	for _, t := range []FileType{KeyFile, LockFile, SnapshotFile, IndexFile, PackFile} {
		dirs = append(dirs, path.Join(prefix, t.Dir()))
	}
	for i := 0; i < 256; i++ {
		dirs = append(dirs, path.Join(prefix, "data", fmt.Sprintf("%02x", i)))
	}
	return dirs
}

// LoadAll reads the whole file h.
func LoadAll(ctx context.Context, be Backend, h Handle) ([]byte, error) {
	var buf []byte
	err := be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		buf = b
		return err
	})
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// CheckRange validates a ranged read of a file of the given size and returns
// how many bytes it covers; a range past the end wraps ErrShortRead.
func CheckRange(size int64, length int, offset int64) (int64, error) {
	if offset < 0 || length < 0 {
		return 0, fmt.Errorf("invalid range offset %d length %d", offset, length)
	}
	if offset > size {
		return 0, fmt.Errorf("offset %d past the end of %d bytes: %w", offset, size, ErrShortRead)
	}
	if length == 0 {
		return size - offset, nil
	}
	if offset+int64(length) > size {
		return 0, fmt.Errorf("range %d+%d past the end of %d bytes: %w", offset, length, size, ErrShortRead)
	}
	return int64(length), nil
}
