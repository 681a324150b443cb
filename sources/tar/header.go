package tar

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/sources"
)

// blockSize is tar's unit: headers and padded contents are whole blocks.
const blockSize = 512

// PAX record keys that carry extended attributes: GNU tar and star write
// SCHILY.xattr.NAME with the raw value; libarchive (bsdtar) writes
// LIBARCHIVE.xattr.NAME with a URL-encoded name and a base64 value, often
// next to the SCHILY form; GNU tar --selinux writes the SELinux context as
// RHT.security.selinux.
// GNU type flags archive/tar has no names for.
const (
	typeGNUDumpDir  = 'D' // a directory of an incremental dump
	typeGNUVolume   = 'V' // the volume label
	typeGNUMultiVol = 'M' // the rest of a file begun in the previous volume
)

const (
	paxSchilyXattr    = "SCHILY.xattr."
	paxLibarchiveXatt = "LIBARCHIVE.xattr."
	paxSELinux        = "RHT.security.selinux"
)

// entryType maps a tar type flag; ok is false for headers that hold
// nothing to store.
func entryType(flag byte) (sources.Type, bool) {
	switch flag {
	case tar.TypeDir, typeGNUDumpDir:
		return sources.Dir, true
	case tar.TypeSymlink:
		return sources.Symlink, true
	case tar.TypeChar:
		return sources.CharDev, true
	case tar.TypeBlock:
		return sources.Dev, true
	case tar.TypeFifo:
		return sources.FIFO, true
	case tar.TypeLink:
		return sources.File, true // replaced by the target's type
	case tar.TypeXGlobalHeader, typeGNUVolume:
		return sources.InvalidType, false
	}
	// Regular files ('0', NUL, contiguous '7', old GNU sparse 'S'), and,
	// like GNU tar extracting them, unknown types.
	return sources.File, true
}

// typeBits are the fs.FileMode type bits of each entry type.
func typeBits(t sources.Type) fs.FileMode {
	switch t {
	case sources.Dir:
		return fs.ModeDir
	case sources.Symlink:
		return fs.ModeSymlink
	case sources.CharDev:
		return fs.ModeDevice | fs.ModeCharDevice
	case sources.Dev:
		return fs.ModeDevice
	case sources.FIFO:
		return fs.ModeNamedPipe
	}
	return 0
}

// newEntry builds the entry of header hdr at snapshot path p. raw holds
// the header blocks as read (for the order of extended attributes). The
// returned entry is never nil, so that an error can name it.
func newEntry(hdr *tar.Header, raw []byte, p string, typ sources.Type) (*sources.Entry, error) {
	e := &sources.Entry{Path: p, HostPath: "/" + p, Type: typ}
	mode := hdr.FileInfo().Mode() &^ fs.ModeType
	e.Mode = mode | typeBits(typ)
	if hdr.Uid < 0 || int64(hdr.Uid) > math.MaxUint32 || hdr.Gid < 0 || int64(hdr.Gid) > math.MaxUint32 {
		return e, fmt.Errorf("tar entry %q: owner %d:%d out of range", hdr.Name, hdr.Uid, hdr.Gid)
	}
	e.UID, e.GID = uint32(hdr.Uid), uint32(hdr.Gid)
	e.User, e.Group = hdr.Uname, hdr.Gname
	e.ModTime, e.AccessTime, e.ChangeTime = hdr.ModTime, hdr.AccessTime, hdr.ChangeTime
	// Only PAX (and GNU incremental) archives record access and change
	// times. Without them the modification time stands in, as restic's
	// stdin nodes do: a zero time would reach a restore with --with-atime
	// as the year 1.
	if e.AccessTime.IsZero() {
		e.AccessTime = e.ModTime
	}
	if e.ChangeTime.IsZero() {
		e.ChangeTime = e.ModTime
	}
	switch typ {
	case sources.File:
		if hdr.Size < 0 {
			return e, fmt.Errorf("tar entry %q: negative size %d", hdr.Name, hdr.Size)
		}
		e.Size = hdr.Size
	case sources.Symlink:
		e.LinkTarget = hdr.Linkname
	case sources.Dev, sources.CharDev:
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return e, fmt.Errorf("tar entry %q: device %d,%d out of range", hdr.Name, hdr.Devmajor, hdr.Devminor)
		}
		e.Device = mkdev(uint64(hdr.Devmajor), uint64(hdr.Devminor))
	}
	xattrs, err := xattrsOf(hdr.PAXRecords, raw)
	if err != nil {
		return e, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	e.Xattrs = xattrs
	return e, nil
}

// mkdev encodes a device number the way Linux's st_rdev does (glibc's
// makedev), which is what restic records for device nodes.
func mkdev(major, minor uint64) uint64 {
	return (major&0x00000fff)<<8 | (major&0xfffff000)<<32 |
		(minor & 0x000000ff) | (minor&0xffffff00)<<12
}

// xattrsOf collects the extended attributes of the PAX records, in the
// order the archive lists them: tar writes them in listxattr order, and
// the order is part of what a snapshot stores. archive/tar hands the
// records over as a map, so the order is recovered from the raw header
// bytes; attributes not found there follow, sorted by name.
func xattrsOf(recs map[string]string, raw []byte) ([]sources.Xattr, error) {
	type found struct {
		x   sources.Xattr
		pos int
	}
	var out []found
	seen := map[string]int{} // name -> index in out
	add := func(key, name string, value []byte) {
		pos := bytes.Index(raw, []byte(" "+key+"="))
		if pos < 0 {
			pos = math.MaxInt
		}
		if i, ok := seen[name]; ok {
			// bsdtar writes both spellings of one attribute: keep the
			// first value found, at the first place either appears.
			out[i].pos = min(out[i].pos, pos)
			return
		}
		seen[name] = len(out)
		out = append(out, found{sources.Xattr{Name: name, Value: value}, pos})
	}
	// SCHILY first: where both forms exist, they agree, and its raw value
	// needs no decoding.
	for _, key := range sortedKeys(recs) {
		if name, ok := strings.CutPrefix(key, paxSchilyXattr); ok && name != "" {
			add(key, name, []byte(recs[key]))
		}
	}
	for _, key := range sortedKeys(recs) {
		enc, ok := strings.CutPrefix(key, paxLibarchiveXatt)
		if !ok || enc == "" {
			continue
		}
		name, err := url.PathUnescape(enc)
		if err != nil {
			return nil, fmt.Errorf("PAX record %q: bad attribute name: %w", key, err)
		}
		value, err := base64.StdEncoding.DecodeString(recs[key])
		if err != nil {
			// libarchive writes unpadded base64.
			value, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(recs[key], "="))
		}
		if err != nil {
			return nil, fmt.Errorf("PAX record %q: bad base64 value: %w", key, err)
		}
		add(key, name, value)
	}
	if v, ok := recs[paxSELinux]; ok {
		add(paxSELinux, "security.selinux", []byte(v))
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(out, func(a, b found) int {
		if a.pos != b.pos {
			if a.pos < b.pos {
				return -1
			}
			return 1
		}
		return strings.Compare(a.x.Name, b.x.Name)
	})
	xs := make([]sources.Xattr, len(out))
	for i, f := range out {
		xs[i] = f.x
		if xs[i].Value == nil {
			xs[i].Value = []byte{} // an empty value is still a value
		}
	}
	return xs, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
