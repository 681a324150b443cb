package index

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

// File is the content of one index file: the packs it describes, each with
// all of its blobs.
type File struct {
	Packs []PackEntry `json:"packs"`
	// Supersedes lists index files this one replaced. restic ≤ 0.16 wrote it;
	// readers ignore it and writers omit it.
	Supersedes []blob.ID `json:"supersedes,omitempty"`
}

// PackEntry describes one pack in an index file.
type PackEntry struct {
	ID    blob.ID     `json:"id"`
	Blobs []BlobEntry `json:"blobs"`
}

// BlobEntry is one blob of a pack as written in index files.
type BlobEntry struct {
	ID                 blob.ID   `json:"id"`
	Type               blob.Type `json:"type"`
	Offset             uint32    `json:"offset"`
	Length             uint32    `json:"length"`
	UncompressedLength uint32    `json:"uncompressed_length,omitempty"`
}

// PackBlobs converts the entries of p to pack blobs.
func (p *PackEntry) PackBlobs() []pack.Blob {
	out := make([]pack.Blob, len(p.Blobs))
	for i, b := range p.Blobs {
		out[i] = pack.Blob{Handle: blob.Handle{ID: b.ID, Type: b.Type}, Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength}
	}
	return out
}

// NewPackEntry describes a pack from its header blobs.
func NewPackEntry(id blob.ID, blobs []pack.Blob) PackEntry {
	p := PackEntry{ID: id, Blobs: make([]BlobEntry, len(blobs))}
	for i, b := range blobs {
		p.Blobs[i] = BlobEntry{ID: b.ID, Type: b.Type, Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength}
	}
	return p
}

// Encode returns the JSON that restic writes for an index file: compact, with
// one trailing newline, no "supersedes".
func (f *File) Encode() ([]byte, error) {
	if buf, ok := f.encodeFast(); ok {
		return buf, nil
	}
	out := File{Packs: f.Packs}
	if out.Packs == nil {
		out.Packs = []PackEntry{}
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(&out); err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode parses an index file. It accepts the current format and the legacy
// format (a bare JSON array of packs, from restic's early days), reporting
// which one it found. Every blob entry is checked for a valid type and a
// length that can hold the encryption overhead.
func Decode(buf []byte) (f *File, legacy bool, err error) {
	f, legacy, err = decodeJSON(buf)
	if err != nil {
		return nil, legacy, err
	}
	for _, p := range f.Packs {
		for _, b := range p.Blobs {
			// A missing "type" leaves the zero value: such an entry can
			// be neither looked up nor written back, so the file is bad.
			if b.Type != blob.DataBlob && b.Type != blob.TreeBlob {
				return nil, legacy, fmt.Errorf("decode index: pack %s blob %s has no blob type", p.ID.Str(), b.ID.Str())
			}
			if b.Length < 32 {
				return nil, legacy, fmt.Errorf("decode index: pack %s blob %s has length %d", p.ID.Str(), b.ID.Str(), b.Length)
			}
			if uint64(b.Offset)+uint64(b.Length) > 1<<32-1 {
				return nil, legacy, fmt.Errorf("decode index: pack %s blob %s ends past 4 GiB", p.ID.Str(), b.ID.Str())
			}
		}
	}
	return f, legacy, nil
}

// decodeJSON decodes with the fast scanner where it can and with
// encoding/json otherwise.
func decodeJSON(buf []byte) (f *File, legacy bool, err error) {
	buf = bytes.TrimLeft(buf, " \t\r\n")
	legacy = len(buf) > 0 && buf[0] == '['
	if f, ok := decodeFast(buf); ok {
		return f, legacy, nil
	}
	return decodeReference(buf)
}

// decodeReference is encoding/json's reading of an index file.
func decodeReference(buf []byte) (f *File, legacy bool, err error) {
	buf = bytes.TrimLeft(buf, " \t\r\n")
	f = &File{}
	if len(buf) > 0 && buf[0] == '[' {
		legacy = true
		err = json.Unmarshal(buf, &f.Packs)
	} else {
		err = json.Unmarshal(buf, f)
	}
	if err != nil {
		return nil, legacy, fmt.Errorf("decode index: %w", err)
	}
	return f, legacy, nil
}

// HasCompressed reports whether any blob in the file is compressed (a v1
// repository must not have any).
func (f *File) HasCompressed() bool {
	for _, p := range f.Packs {
		for _, b := range p.Blobs {
			if b.UncompressedLength != 0 {
				return true
			}
		}
	}
	return false
}

// BlobCount returns the number of blob entries in the file.
func (f *File) BlobCount() int {
	n := 0
	for _, p := range f.Packs {
		n += len(p.Blobs)
	}
	return n
}

// encodeFast writes what Encode's encoding/json writes into one buffer of
// the exact size: no reflection and no growing buffer (an index file of
// 50000 blobs is about 5 MB, and prune writes hundreds of them). It declines
// (ok false) an entry of an invalid blob type, which encoding/json rejects.
func (f *File) encodeFast() (buf []byte, ok bool) {
	const (
		idLen    = 2*blob.IDSize + 2 // quoted hex
		perBlob  = len(`{"id":,"type":"data","offset":,"length":,"uncompressed_length":},`) + idLen + 3*10
		perPack  = len(`{"id":,"blobs":[]},`) + idLen
		overhead = len(`{"packs":[]}` + "\n")
	)
	n := overhead
	for _, p := range f.Packs {
		n += perPack + perBlob*len(p.Blobs)
	}
	buf = make([]byte, 0, n)
	buf = append(buf, `{"packs":[`...)
	for i, p := range f.Packs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"id":`...)
		buf = appendID(buf, p.ID)
		buf = append(buf, `,"blobs":`...)
		if p.Blobs == nil {
			buf = append(buf, `null`...)
		} else {
			buf = append(buf, '[')
			for j, b := range p.Blobs {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, `{"id":`...)
				buf = appendID(buf, b.ID)
				switch b.Type {
				case blob.DataBlob:
					buf = append(buf, `,"type":"data","offset":`...)
				case blob.TreeBlob:
					buf = append(buf, `,"type":"tree","offset":`...)
				default:
					return nil, false
				}
				buf = strconv.AppendUint(buf, uint64(b.Offset), 10)
				buf = append(buf, `,"length":`...)
				buf = strconv.AppendUint(buf, uint64(b.Length), 10)
				if b.UncompressedLength != 0 {
					buf = append(buf, `,"uncompressed_length":`...)
					buf = strconv.AppendUint(buf, uint64(b.UncompressedLength), 10)
				}
				buf = append(buf, '}')
			}
			buf = append(buf, ']')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, "]}\n"...)
	return buf, true
}

func appendID(buf []byte, id blob.ID) []byte {
	buf = append(buf, '"')
	buf = hex.AppendEncode(buf, id[:])
	return append(buf, '"')
}
