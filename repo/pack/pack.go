// Package pack reads and writes restic pack files:
//
//	Blob_1 || … || Blob_n || EncryptedHeader || HeaderLength (uint32 LE)
//
// Each blob is a sealed box of its (possibly zstd-compressed) plaintext. The
// header lists type, stored length, uncompressed length (compressed blobs
// only) and ID of every blob in order; offsets follow from the lengths.
package pack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Header entry sizes and limits.
const (
	plainEntrySize      = 1 + 4 + blob.IDSize     // type, length, id
	compressedEntrySize = 1 + 4 + 4 + blob.IDSize // type, length, uncompressed length, id
	headerLengthSize    = 4

	// MaxHeaderSize is the largest encrypted header restic accepts (16 MiB).
	MaxHeaderSize = 16 * 1024 * 1024

	// eagerEntries is how many header entries the first read of a pack's tail
	// fetches, like restic: most packs with few blobs need one read.
	eagerEntries = 15
)

// Header type bytes.
const (
	typeData           = 0
	typeTree           = 1
	typeDataCompressed = 2
	typeTreeCompressed = 3
)

// Blob is one entry of a pack header, with its offset in the pack.
type Blob struct {
	blob.Handle
	// Offset of the sealed blob in the pack.
	Offset uint32
	// Length of the sealed blob (ciphertext + 32 bytes).
	Length uint32
	// UncompressedLength of the plaintext if the blob is compressed, else 0.
	UncompressedLength uint32
}

// IsCompressed reports whether the stored blob is zstd-compressed.
func (b Blob) IsCompressed() bool { return b.UncompressedLength != 0 }

// PlaintextLength is the length of the blob's plaintext.
func (b Blob) PlaintextLength() uint32 {
	if b.UncompressedLength != 0 {
		return b.UncompressedLength
	}
	return b.Length - crypto.Overhead
}

func entrySize(b Blob) int {
	if b.IsCompressed() {
		return compressedEntrySize
	}
	return plainEntrySize
}

// HeaderSize is the size of the encrypted header plus its length field for
// these blobs.
func HeaderSize(blobs []Blob) int64 {
	n := int64(crypto.Overhead + headerLengthSize)
	for _, b := range blobs {
		n += int64(entrySize(b))
	}
	return n
}

// Size is the file size of a pack holding exactly these blobs; restic check
// recomputes it from the index and compares it with the stored size.
func Size(blobs []Blob) int64 {
	n := HeaderSize(blobs)
	for _, b := range blobs {
		n += int64(b.Length)
	}
	return n
}

// EncodeHeader returns the header plaintext for blobs, in order.
func EncodeHeader(blobs []Blob) ([]byte, error) {
	buf := make([]byte, 0, HeaderSize(blobs))
	for _, b := range blobs {
		var t byte
		switch {
		case b.Type == blob.DataBlob && !b.IsCompressed():
			t = typeData
		case b.Type == blob.TreeBlob && !b.IsCompressed():
			t = typeTree
		case b.Type == blob.DataBlob:
			t = typeDataCompressed
		case b.Type == blob.TreeBlob:
			t = typeTreeCompressed
		default:
			return nil, fmt.Errorf("pack header: blob %v has invalid type", b.ID.Str())
		}
		buf = append(buf, t)
		buf = binary.LittleEndian.AppendUint32(buf, b.Length)
		if b.IsCompressed() {
			buf = binary.LittleEndian.AppendUint32(buf, b.UncompressedLength)
		}
		buf = append(buf, b.ID[:]...)
	}
	return buf, nil
}

// ParseHeader decodes a header plaintext. It checks every entry's shape and
// that the blobs fit in front of the header (dataSize = pack size minus the
// encrypted header and its length field).
func ParseHeader(plain []byte, dataSize int64) ([]Blob, error) {
	var blobs []Blob
	var offset int64
	for len(plain) > 0 {
		var b Blob
		t := plain[0]
		size := plainEntrySize
		switch t {
		case typeData, typeDataCompressed:
			b.Type = blob.DataBlob
		case typeTree, typeTreeCompressed:
			b.Type = blob.TreeBlob
		default:
			return nil, fmt.Errorf("pack header entry %d: invalid type %d", len(blobs), t)
		}
		if t >= typeDataCompressed {
			size = compressedEntrySize
		}
		if len(plain) < size {
			return nil, fmt.Errorf("pack header entry %d: truncated (%d bytes left, need %d)", len(blobs), len(plain), size)
		}
		b.Length = binary.LittleEndian.Uint32(plain[1:5])
		rest := plain[5:size]
		if t >= typeDataCompressed {
			b.UncompressedLength = binary.LittleEndian.Uint32(rest[:4])
			rest = rest[4:]
			if b.UncompressedLength == 0 {
				return nil, fmt.Errorf("pack header entry %d: compressed blob with uncompressed length 0", len(blobs))
			}
		}
		copy(b.ID[:], rest)
		if b.Length < crypto.Overhead {
			return nil, fmt.Errorf("pack header entry %d: blob length %d is shorter than the encryption overhead", len(blobs), b.Length)
		}
		if offset+int64(b.Length) > dataSize {
			return nil, fmt.Errorf("pack header entry %d: blob at %d+%d extends past the pack data (%d bytes)", len(blobs), offset, b.Length, dataSize)
		}
		b.Offset = uint32(offset)
		offset += int64(b.Length)
		blobs = append(blobs, b)
		plain = plain[size:]
	}
	return blobs, nil
}

// ErrInvalidPack marks damage found while reading a pack's header.
var ErrInvalidPack = errors.New("invalid pack file")

// ReadHeader reads and decrypts the header of a pack of the given size and
// returns its blobs. It validates the header length the way restic does and
// reports damage wrapping ErrInvalidPack (a MAC failure also wraps
// crypto.ErrUnauthenticated).
func ReadHeader(rd io.ReaderAt, size int64, key *crypto.Key) ([]Blob, error) {
	minSize := int64(headerLengthSize + crypto.Overhead)
	if size < minSize {
		return nil, fmt.Errorf("%w: file of %d bytes is too small for a header", ErrInvalidPack, size)
	}
	// First read enough for a handful of entries; most packs need no second
	// read.
	eager := int64(eagerEntries*compressedEntrySize + crypto.Overhead + headerLengthSize)
	if eager > size {
		eager = size
	}
	tail := make([]byte, eager)
	if _, err := rd.ReadAt(tail, size-eager); err != nil {
		return nil, fmt.Errorf("read pack tail: %w", err)
	}
	hl := int64(binary.LittleEndian.Uint32(tail[len(tail)-headerLengthSize:]))
	switch {
	case hl == 0:
		return nil, fmt.Errorf("%w: header length is zero", ErrInvalidPack)
	case hl < crypto.Overhead:
		return nil, fmt.Errorf("%w: header length %d is too small", ErrInvalidPack, hl)
	case hl > size-headerLengthSize:
		return nil, fmt.Errorf("%w: header length %d exceeds the file size %d", ErrInvalidPack, hl, size)
	case hl > MaxHeaderSize:
		return nil, fmt.Errorf("%w: header length %d exceeds the 16 MiB limit", ErrInvalidPack, hl)
	}
	var enc []byte
	if hl+headerLengthSize <= eager {
		enc = tail[eager-headerLengthSize-hl : eager-headerLengthSize]
	} else {
		enc = make([]byte, hl)
		if _, err := rd.ReadAt(enc, size-headerLengthSize-hl); err != nil {
			return nil, fmt.Errorf("read pack header: %w", err)
		}
	}
	plain, err := key.Open(nil, enc)
	if err != nil {
		return nil, fmt.Errorf("%w: decrypt header: %w", ErrInvalidPack, err)
	}
	blobs, err := ParseHeader(plain, size-headerLengthSize-hl)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPack, err)
	}
	return blobs, nil
}

// Writer assembles a pack: sealed blobs are appended as they come, then
// Finalize appends the encrypted header. It is not safe for concurrent use.
type Writer struct {
	w     io.Writer
	key   *crypto.Key
	blobs []Blob
	size  int64 // bytes of blob data written so far
	hdr   int64 // HeaderSize(blobs), kept up to date
}

// NewWriter starts a pack on w.
func NewWriter(w io.Writer, key *crypto.Key) *Writer {
	return &Writer{w: w, key: key, hdr: HeaderSize(nil)}
}

// Add appends one sealed blob. uncompressedLength is 0 for a blob stored
// without compression.
func (p *Writer) Add(h blob.Handle, sealed []byte, uncompressedLength uint32) error {
	if len(sealed) < crypto.Overhead {
		return fmt.Errorf("add blob %v: sealed blob of %d bytes is too short", h, len(sealed))
	}
	if p.size+int64(len(sealed)) > 1<<32-1 {
		return fmt.Errorf("add blob %v: pack would exceed 4 GiB", h)
	}
	if _, err := p.w.Write(sealed); err != nil {
		return fmt.Errorf("write blob %v to pack: %w", h, err)
	}
	b := Blob{Handle: h, Offset: uint32(p.size), Length: uint32(len(sealed)), UncompressedLength: uncompressedLength}
	p.blobs = append(p.blobs, b)
	p.size += int64(len(sealed))
	p.hdr += int64(entrySize(b))
	return nil
}

// Count is the number of blobs added.
func (p *Writer) Count() int { return len(p.blobs) }

// DataSize is the number of blob bytes written so far (the pack size target
// counts only these).
func (p *Writer) DataSize() int64 { return p.size }

// HeaderFull reports whether one more entry could push the encrypted header
// past restic's 16 MiB limit.
func (p *Writer) HeaderFull() bool {
	return p.hdr+compressedEntrySize > MaxHeaderSize
}

// Blobs returns the blobs added so far with their offsets.
func (p *Writer) Blobs() []Blob { return p.blobs }

// Finalize writes the encrypted header and its length and returns the total
// pack size.
func (p *Writer) Finalize() (int64, error) {
	plain, err := EncodeHeader(p.blobs)
	if err != nil {
		return 0, err
	}
	enc := p.key.Seal(nil, plain)
	enc = binary.LittleEndian.AppendUint32(enc, uint32(len(enc)))
	if _, err := p.w.Write(enc); err != nil {
		return 0, fmt.Errorf("write pack header: %w", err)
	}
	return p.size + int64(len(enc)), nil
}
