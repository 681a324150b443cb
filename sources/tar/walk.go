package tar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/cairn-backup/cairn/sources"
)

// ErrUnsafeName is wrapped by the errors for entries whose names climb out
// of the archive with "..": they are reported and left out, never stored
// somewhere else.
var ErrUnsafeName = errors.New(`name contains ".."`)

// ErrLinkTarget is wrapped by the errors for hard links whose target is
// not an earlier entry of the archive that was kept (it is missing,
// excluded, refused, or a directory).
var ErrLinkTarget = errors.New("hard link target not in the archive")

// LinkVisitor is implemented by visitors that store a hard link to an
// earlier file without reading its content again: a tar stream holds a
// hard link's content only once, under the first name.
//
// For such a visitor the source calls VisitLink instead of Visit for a
// regular file that the archive records as a hard link. e carries the
// link's full metadata (the target's size and extended attributes) and no
// Open; target is the snapshot path of the earlier regular file, already
// visited in this walk, whose content e shares. Storing both names with a
// shared inode number and a link count, as restic records hard links,
// lets a restore link them again.
//
// For other visitors the source keeps a copy of every regular file's
// content in an unlinked temporary file while the walk runs, so that a
// hard link's Open can return it: the content is right, at the cost of
// writing the archive's file data to local disk once.
type LinkVisitor interface {
	sources.Visitor
	VisitLink(ctx context.Context, e *sources.Entry, target string) error
}

// record is what a later hard link needs of an earlier entry.
type record struct {
	e      sources.Entry // Open is nil; Path and HostPath are the target's
	extent *extent       // the spooled content of a regular file
}

// walker reads one archive.
type walker struct {
	s    *Source
	opts sources.WalkOptions
	v    sources.Visitor
	lv   LinkVisitor // nil: hard links are served from the spool

	in    *recordingReader
	tr    *tar.Reader
	spool *spool

	dirs     map[string]bool    // directories visited (listed or synthesised)
	excluded map[string]bool    // directories left out, with everything below
	records  map[string]*record // non-directory entries kept, for hard links
	last     string             // name of the last header read, for errors
	atEOF    bool               // the input reached its end
}

func newWalker(s *Source, opts sources.WalkOptions, v sources.Visitor) *walker {
	w := &walker{
		s: s, opts: opts, v: v,
		dirs:     map[string]bool{"": true},
		excluded: map[string]bool{},
		records:  map[string]*record{},
	}
	w.lv, _ = v.(LinkVisitor)
	return w
}

func (w *walker) close() {
	if w.spool != nil {
		w.spool.close()
	}
}

// onError reports a problem with one entry; nil means skip it and go on.
func (w *walker) onError(hostPath string, err error) error {
	if w.opts.OnError == nil {
		return err
	}
	return w.opts.OnError(hostPath, err)
}

// walk reads the archive from r to its end-of-archive marker, visiting
// every entry, then reads r to its end so that a command writing it can
// finish (tar pads archives to whole records).
func (w *walker) walk(ctx context.Context, r io.Reader) error {
	w.in = &recordingReader{r: r}
	w.tr = tar.NewReader(w.in)
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		w.in.start()
		hdr, err := w.tr.Next()
		raw := w.in.stop()
		if errors.Is(err, io.EOF) {
			// tar.Reader also says io.EOF when the input simply stops at
			// a block boundary; only a zero block ends an archive.
			if len(raw) < blockSize {
				w.atEOF = true
				return w.streamError("the archive ends without its end-of-archive marker (truncated?)", io.ErrUnexpectedEOF)
			}
			break
		}
		if err != nil {
			w.atEOF = w.in.eof
			return w.streamError("read header", err)
		}
		if err := w.entry(ctx, hdr, raw); err != nil {
			return err
		}
		// Whatever the visitor left unread is skipped here, so that the
		// next header's bytes are all that Next reads (and records).
		if _, err := io.Copy(io.Discard, w.tr); err != nil {
			w.atEOF = w.in.eof
			return w.streamError("read content of "+quote(hdr.Name), err)
		}
	}
	if _, err := io.Copy(io.Discard, w.in); err != nil {
		return fmt.Errorf("tar: read after the end of the archive: %w", err)
	}
	w.atEOF = true
	return nil
}

// streamError describes a broken archive, naming where it broke.
func (w *walker) streamError(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	where := "at the start of the archive"
	if w.last != "" {
		where = "after entry " + quote(w.last)
	}
	return fmt.Errorf("tar: malformed or truncated archive: %s %s (byte %d): %w", what, where, w.in.n, err)
}

func quote(name string) string { return fmt.Sprintf("%q", name) }

// entry turns one header into visits.
func (w *walker) entry(ctx context.Context, hdr *tar.Header, raw []byte) error {
	w.last = hdr.Name
	typ, ok := entryType(hdr.Typeflag)
	if hdr.Typeflag == typeGNUMultiVol {
		return w.onError("/"+strings.TrimLeft(hdr.Name, "/"), fmt.Errorf("tar entry %q: the rest of a file from another volume (multi-volume archives are not supported)", hdr.Name))
	}
	if !ok {
		return nil // global PAX headers, volume labels: nothing to store
	}
	p, err := cleanName(hdr.Name)
	if err != nil {
		return w.onError("/"+strings.TrimLeft(hdr.Name, "/"), fmt.Errorf("tar entry %q: %w", hdr.Name, err))
	}
	if p == "" {
		// "./" or "/": the archive's root is the snapshot's root, which
		// has no metadata of its own in a snapshot.
		return nil
	}
	if w.below(w.excluded, p) {
		return nil
	}
	e, err := newEntry(hdr, raw, p, typ)
	if err != nil {
		return w.onError(e.HostPath, err)
	}
	if hdr.Typeflag == tar.TypeLink {
		return w.link(ctx, hdr, e)
	}
	if w.opts.Exclude != nil && w.opts.Exclude.Excluded(e) {
		if typ == sources.Dir {
			w.excluded[p] = true
		}
		return nil
	}
	if err := w.parents(ctx, p); err != nil {
		return err
	}
	if typ == sources.Dir {
		w.dirs[p] = true
		delete(w.records, p)
		return w.visit(ctx, e)
	}
	rec := &record{e: *e}
	if typ == sources.File {
		c := &content{w: w, size: hdr.Size}
		if w.lv == nil {
			if w.spool == nil {
				if w.spool, err = newSpool(); err != nil {
					return err
				}
			}
			c.spool = w.spool
			c.extent = w.spool.begin()
			rec.extent = c.extent
		}
		e.Open = c.open
		err = w.visit(ctx, e)
		c.done()
		if err == nil {
			err = c.finish()
		}
		if err != nil {
			return err
		}
	} else if err := w.visit(ctx, e); err != nil {
		return err
	}
	w.records[p] = rec
	return nil
}

func (w *walker) visit(ctx context.Context, e *sources.Entry) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return w.v.Visit(ctx, e)
}

// below reports whether p or one of its parents is in set.
func (w *walker) below(set map[string]bool, p string) bool {
	if len(set) == 0 {
		return false
	}
	for i := 0; i <= len(p); i++ {
		if (i == len(p) || p[i] == '/') && set[p[:i]] {
			return true
		}
	}
	return false
}

// parents visits the directories above p that the archive has not listed
// (yet): tar needs no entry for a directory to hold files in it.
func (w *walker) parents(ctx context.Context, p string) error {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' || w.dirs[p[:i]] {
			continue
		}
		d := p[:i]
		w.dirs[d] = true
		if err := w.visit(ctx, w.implicitDir(d)); err != nil {
			return err
		}
	}
	return nil
}

// implicitDir is the entry of a directory the archive implies: mode 0755,
// owned by the backing-up user, stamped with Options.Time, like the
// directories of sources/stdin.
func (w *walker) implicitDir(p string) *sources.Entry {
	t := w.s.opts.Time
	return &sources.Entry{
		Path: p, HostPath: "/" + p, Type: sources.Dir, Mode: fs.ModeDir | 0o755,
		ModTime: t, AccessTime: t, ChangeTime: t, UID: w.s.uid, GID: w.s.gid,
	}
}

// link visits a hard link (e holds the link header's metadata) as another
// name for the earlier entry it names.
func (w *walker) link(ctx context.Context, hdr *tar.Header, e *sources.Entry) error {
	target, err := cleanName(hdr.Linkname)
	var rec *record
	if err == nil {
		rec = w.records[target]
	}
	if rec == nil {
		why := ErrLinkTarget
		if err != nil {
			why = err
		}
		return w.onError(e.HostPath, fmt.Errorf("tar entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, why))
	}
	t := rec.e
	// Hard links share their inode: type, size, device and symlink target
	// are the target's. The link header repeats mode, owner and times;
	// extended attributes come with it only from some writers.
	e.Type, e.Size, e.Device, e.LinkTarget = t.Type, t.Size, t.Device, t.LinkTarget
	e.Mode = e.Mode&^fs.ModeType | t.Mode&fs.ModeType
	if len(e.Xattrs) == 0 {
		e.Xattrs = t.Xattrs
	}
	if w.opts.Exclude != nil && w.opts.Exclude.Excluded(e) {
		return nil
	}
	if err := w.parents(ctx, e.Path); err != nil {
		return err
	}
	if e.Type == sources.File {
		if w.lv != nil {
			if err := context.Cause(ctx); err != nil {
				return err
			}
			if err := w.lv.VisitLink(ctx, e, target); err != nil {
				return err
			}
		} else {
			ext := rec.extent
			if ext == nil || !ext.complete {
				why := ErrLinkTarget
				if ext != nil && ext.err != nil {
					why = ext.err
				}
				return w.onError(e.HostPath, fmt.Errorf("tar entry %q: hard link to %q: the target's content was not kept: %w", hdr.Name, hdr.Linkname, why))
			}
			e.Open = w.spool.opener(ext, e.HostPath)
			if err := w.visit(ctx, e); err != nil {
				return err
			}
		}
	} else if err := w.visit(ctx, e); err != nil {
		return err
	}
	// A later link to this name reaches the same content.
	link := *rec
	link.e.Path, link.e.HostPath = e.Path, e.HostPath
	w.records[e.Path] = &link
	return nil
}

// cleanName turns an archive member name into a snapshot path: leading
// slashes and "./" go, as do empty and "." components and a trailing
// slash; "" is the archive's root. A ".." component is refused.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	var b strings.Builder
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", ErrUnsafeName
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(c)
	}
	return b.String(), nil
}
