package backup

import (
	"io/fs"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/sources"
)

// modeMask keeps what restic stores of a mode: permissions, type bits,
// setuid, setgid and sticky.
const modeMask = fs.ModePerm | fs.ModeType | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func nodeType(t sources.Type) tree.Type {
	switch t {
	case sources.File:
		return tree.TypeFile
	case sources.Dir:
		return tree.TypeDir
	case sources.Symlink:
		return tree.TypeSymlink
	case sources.Dev:
		return tree.TypeDev
	case sources.CharDev:
		return tree.TypeCharDev
	case sources.FIFO:
		return tree.TypeFifo
	case sources.Socket:
		return tree.TypeSocket
	}
	return tree.TypeIrregular
}

// inZone renders t in loc; the zero time stays UTC so that it encodes as
// restic's "0001-01-01T00:00:00Z" whatever the zone.
func inZone(t time.Time, loc *time.Location) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.In(loc)
}

// newNode builds a node from an entry's metadata the way restic does for
// each type. Files get their content (and size) later.
func newNode(e *sources.Entry, opts *Options) *tree.Node {
	n := &tree.Node{
		Name:       e.Base(),
		Type:       nodeType(e.Type),
		Mode:       e.Mode & modeMask,
		ModTime:    inZone(e.ModTime, opts.Location),
		ChangeTime: inZone(e.ChangeTime, opts.Location),
		UID:        e.UID,
		GID:        e.GID,
		User:       e.User,
		Group:      e.Group,
		Inode:      e.Inode,
		DeviceID:   e.DeviceID,
	}
	if opts.WithAtime {
		n.AccessTime = inZone(e.AccessTime, opts.Location)
	} else {
		n.AccessTime = n.ModTime
	}
	switch e.Type {
	case sources.File:
		n.Size = uint64(e.Size)
		n.Links = e.Links
		n.Content = []blob.ID{}
	case sources.Symlink:
		n.LinkTarget = e.LinkTarget
		n.Links = e.Links
	case sources.Dev, sources.CharDev:
		n.Device = e.Device
		n.Links = e.Links
	}
	if len(e.Xattrs) > 0 {
		n.ExtendedAttributes = make([]tree.ExtendedAttribute, len(e.Xattrs))
		for i, x := range e.Xattrs {
			// Never nil: restic reads an empty value as an empty slice and
			// encodes it as "", while a nil slice would encode as null and
			// change the tree's ID.
			n.ExtendedAttributes[i] = tree.ExtendedAttribute{Name: x.Name, Value: append([]byte{}, x.Value...)}
		}
	}
	return n
}

// unchanged applies restic's change detection to a regular file: size and
// mtime, plus ctime and inode where the source has them (and unless
// ignored), plus the mode where it has neither (SFTP: the only other hint a
// file was replaced).
func unchanged(e *sources.Entry, prev *tree.Node, has sources.Metadata, opts *Options) bool {
	if prev == nil || prev.Type != tree.TypeFile || prev.Content == nil {
		return false
	}
	if uint64(e.Size) != prev.Size || !e.ModTime.Equal(prev.ModTime) {
		return false
	}
	if has&sources.HasChangeTime != 0 && !opts.IgnoreCtime && !e.ChangeTime.Equal(prev.ChangeTime) {
		return false
	}
	if has&sources.HasInode != 0 && !opts.IgnoreInode && e.Inode != prev.Inode {
		return false
	}
	if has&(sources.HasInode|sources.HasChangeTime) == 0 && e.Mode&modeMask != prev.Mode {
		return false
	}
	return true
}
