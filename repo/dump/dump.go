package dump

import (
	"archive/tar"
	"archive/zip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/repo/walk"
)

// Loader loads trees and data blobs, from several goroutines at once;
// *repo.Repository is one.
type Loader interface {
	walk.TreeLoader
	LoadBlob(ctx context.Context, t blob.Type, id blob.ID, buf []byte) ([]byte, error)
}

// Format is an archive format for directories.
type Format string

// The archive formats restic dump writes.
const (
	Tar Format = "tar"
	Zip Format = "zip"
)

// ParseFormat checks an --archive value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case Tar, Zip:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown archive format %q", s)
}

// Options tune a Dumper. The zero value is ready to use.
type Options struct {
	// Workers is how many blobs of a file are loaded at once; 0 means 4.
	// The content is still written in order.
	Workers int
}

// Dumper writes files and trees from a repository to a writer.
type Dumper struct {
	l       Loader
	w       io.Writer
	workers int
}

// New returns a Dumper that writes to w.
func New(l Loader, w io.Writer, opts Options) *Dumper {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	return &Dumper{l: l, w: w, workers: opts.Workers}
}

// WriteFile writes the content of a file node: its data blobs in order.
func (d *Dumper) WriteFile(ctx context.Context, n *tree.Node) error {
	return d.writeContent(ctx, d.w, n)
}

// writeContent loads up to d.workers blobs at once, ahead of the one being
// written, and writes them in order.
func (d *Dumper) writeContent(ctx context.Context, w io.Writer, n *tree.Node) error {
	if len(n.Content) == 0 {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(d.workers + 1) // the loaders and the writer
	pending := make(chan chan []byte, d.workers)
	g.Go(func() error {
		for ch := range pending {
			var buf []byte
			select {
			case buf = <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
queue:
	for _, id := range n.Content {
		ch := make(chan []byte, 1) // a loader never waits for the writer
		g.Go(func() error {
			buf, err := d.l.LoadBlob(ctx, blob.DataBlob, id, nil)
			if err != nil {
				return fmt.Errorf("load data blob %s of %q: %w", id.Str(), n.Name, err)
			}
			ch <- buf
			return nil
		})
		select {
		case pending <- ch:
		case <-ctx.Done():
			break queue
		}
	}
	close(pending)
	return g.Wait()
}

// WriteTree writes the nodes of tree id as an archive. root is the path
// the entries are named below (restic passes the dumped directory's path
// in the snapshot, "/" for the whole snapshot); names in the archive are
// relative to "/", so dumping /a/b names its entries "a/b/...".
func (d *Dumper) WriteTree(ctx context.Context, id blob.ID, root string, format Format) (err error) {
	t, err := d.l.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	var add func(ctx context.Context, p string, n *tree.Node) error
	var closer io.Closer
	switch format {
	case Tar:
		tw := tar.NewWriter(d.w)
		add = func(ctx context.Context, p string, n *tree.Node) error { return d.addTar(ctx, tw, p, n) }
		closer = tw
	case Zip:
		zw := zip.NewWriter(d.w)
		add = func(ctx context.Context, p string, n *tree.Node) error { return d.addZip(ctx, zw, p, n) }
		closer = zw
	default:
		return fmt.Errorf("unknown archive format %q", format)
	}
	for _, n := range t.Nodes() {
		p := path.Join(root, n.Name)
		// Every node at the top goes in, whatever its type.
		if err := add(ctx, p, n); err != nil {
			return err
		}
		if n.Type != tree.TypeDir {
			continue
		}
		if n.Subtree == nil {
			return fmt.Errorf("subtree for node %v in tree %v is nil", n.Name, p)
		}
		err := walk.Walk(ctx, d.l, *n.Subtree, func(_ blob.ID, sub string, c *tree.Node, loadErr error) error {
			if loadErr != nil {
				return loadErr
			}
			if c == nil {
				return nil
			}
			switch c.Type {
			case tree.TypeFile, tree.TypeDir, tree.TypeSymlink:
				return add(ctx, path.Join(p, sub), c)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := closer.Close(); err != nil {
		return fmt.Errorf("finish %s archive: %w", format, err)
	}
	return nil
}

// archiveName is the entry name of the node at p: relative to "/".
func archiveName(p string) string {
	name := path.Clean(p)
	for len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if name == "" {
		return "."
	}
	return name
}

// Mode bits of the tar format (POSIX ustar) for setuid, setgid and sticky.
const (
	tarSetuid = 0o4000
	tarSetgid = 0o2000
	tarSticky = 0o1000
)

func (d *Dumper) addTar(ctx context.Context, tw *tar.Writer, p string, n *tree.Node) error {
	hdr := &tar.Header{
		Name:       archiveName(p),
		Size:       int64(n.Size),
		Mode:       int64(n.Mode.Perm()),
		Uid:        int(n.UID),
		Gid:        int(n.GID),
		Uname:      n.User,
		Gname:      n.Group,
		ModTime:    n.ModTime,
		AccessTime: n.AccessTime,
		ChangeTime: n.ChangeTime,
		PAXRecords: paxRecords(n.ExtendedAttributes),
	}
	if n.Mode&fs.ModeSetuid != 0 {
		hdr.Mode |= tarSetuid
	}
	if n.Mode&fs.ModeSetgid != 0 {
		hdr.Mode |= tarSetgid
	}
	if n.Mode&fs.ModeSticky != 0 {
		hdr.Mode |= tarSticky
	}
	switch n.Type {
	case tree.TypeFile:
		hdr.Typeflag = tar.TypeReg
	case tree.TypeSymlink:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = n.LinkTarget
	case tree.TypeDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing header for %q: %w", p, err)
	}
	return d.writeContent(ctx, tw, n)
}

// paxRecords turns extended attributes into PAX records: Linux POSIX ACLs
// as their text form (an ACL that does not parse is left out, as restic
// does), every other attribute as SCHILY.xattr.NAME with its raw value.
func paxRecords(attrs []tree.ExtendedAttribute) map[string]string {
	recs := make(map[string]string)
	for _, a := range attrs {
		key := ""
		switch a.Name {
		case "system.posix_acl_access":
			key = "SCHILY.acl.access"
		case "system.posix_acl_default":
			key = "SCHILY.acl.default"
		}
		if key == "" {
			recs["SCHILY.xattr."+a.Name] = string(a.Value)
			continue
		}
		if text, err := FormatLinuxACL(a.Value); err == nil {
			recs[key] = text
		}
	}
	return recs
}

func (d *Dumper) addZip(ctx context.Context, zw *zip.Writer, p string, n *tree.Node) error {
	hdr := &zip.FileHeader{
		Name:               archiveName(p),
		UncompressedSize64: n.Size,
		Modified:           n.ModTime,
	}
	hdr.SetMode(n.Mode)
	if n.Type == tree.TypeFile {
		hdr.Method = zip.Deflate
	}
	if n.Type == tree.TypeDir {
		hdr.Name += "/"
	}
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("zip header for %q: %w", p, err)
	}
	if n.Type == tree.TypeSymlink {
		if _, err := io.WriteString(w, n.LinkTarget); err != nil {
			return fmt.Errorf("write symlink %q: %w", p, err)
		}
		return nil
	}
	return d.writeContent(ctx, w, n)
}
