package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/cairn-backup/cairn/backend"
	"github.com/pkg/sftp"
)

// maxOrphans bounds the temporary file names remembered for cleanup.
const maxOrphans = 1024

// Save stores rd under h atomically: the data goes to
// "<final>-restic-temp-<32 hex>" (restic's temporary name, which List
// skips), created with O_CREATE|O_EXCL, mode 0600, written with many
// requests in flight, made read-only (0400), closed and renamed onto the
// final name with posix-rename@openssh.com when the server offers it (an
// existing file is then replaced atomically) or plain rename otherwise
// (which refuses an existing file). A missing directory is created on
// demand. If the connection drops, the upload is repeated once on a new
// connection; a failed or cancelled Save leaves nothing under h.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	name, err := b.filename(h)
	if err != nil {
		return fmt.Errorf("sftp: save %v in %s: %w", h, b.Location(), err)
	}
	err = b.pool.do(ctx, func(c *conn, retry bool) error {
		if retry {
			if err := rd.Rewind(); err != nil {
				return fmt.Errorf("rewind the data for a retry: %w", err)
			}
		}
		return b.saveOn(c, name, rd, retry)
	})
	if err != nil {
		return fmt.Errorf("sftp: save %s on %s: %w", name, b.host(), err)
	}
	return nil
}

func (b *Backend) saveOn(c *conn, name string, rd backend.RewindReader, retry bool) (err error) {
	b.removeOrphans(c)
	tmp := name + "-restic-temp-" + tempSuffix()
	tmpBase := path.Base(tmp) // errors name the final path already
	f, err := c.sftp.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY)
	if errors.Is(err, fs.ErrNotExist) {
		// The directory is missing (data/XX of a repository made by a
		// tool that creates them lazily, or removed by hand).
		if err := b.mkdirAll(c, path.Dir(name)); err != nil {
			return err
		}
		f, err = c.sftp.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", tmpBase, err)
	}
	renamed := false
	defer func() {
		if renamed {
			return
		}
		_ = f.Close()
		if rmErr := c.sftp.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			b.addOrphan(tmp)
		}
	}()

	// pkg/sftp cannot pass a mode to open, so the file exists briefly with
	// the server's default mode; it is still empty then.
	if err := f.Chmod(b.fileMode); err != nil && !errors.Is(err, sftp.ErrSSHFxOpUnsupported) {
		return fmt.Errorf("chmod %s: %w", tmpBase, err)
	}
	n, err := f.ReadFromWithConcurrency(rd, b.cfg.RequestsPerFile)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmpBase, b.explainWriteError(c, path.Dir(name), rd.Length(), err))
	}
	if n != rd.Length() {
		return fmt.Errorf("write %s: the data had %d bytes, %d were announced", tmpBase, n, rd.Length())
	}
	// Read-only before the rename, so the file never appears under its
	// final name with write permission.
	if err := f.Chmod(b.fileMode &^ 0o222); err != nil && !errors.Is(err, sftp.ErrSSHFxOpUnsupported) {
		return fmt.Errorf("chmod %s: %w", tmpBase, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpBase, err)
	}
	if b.posixRename {
		err = c.sftp.PosixRename(tmp, name)
	} else {
		err = c.sftp.Rename(tmp, name)
		if err != nil && retry {
			// The first attempt's rename may have succeeded with its reply
			// lost in the dropped connection: then the file is complete.
			if fi, serr := c.sftp.Lstat(name); serr == nil && fi.Size() == rd.Length() {
				err = nil
				_ = c.sftp.Remove(tmp)
				renamed = true
			}
		}
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", path.Base(tmp), path.Base(name), err)
	}
	renamed = true
	return nil
}

// explainWriteError turns OpenSSH's generic failure on a full disk into a
// clear error wrapping syscall.ENOSPC, which retry logic can treat as
// permanent (the SFTP protocol has a "no space" code, but sftp-server sends
// "failure").
func (b *Backend) explainWriteError(c *conn, dir string, size int64, err error) error {
	var se *sftp.StatusError
	if !errors.As(err, &se) || se.FxCode() != sftp.ErrSSHFxFailure {
		return err
	}
	if _, ok := c.sftp.HasExtension("statvfs@openssh.com"); !ok {
		return err
	}
	st, serr := c.sftp.StatVFS(dir)
	if serr != nil {
		return err
	}
	if st.Favail == 0 || st.Frsize*st.Bavail < uint64(size) {
		return fmt.Errorf("no space left on the server's disk (%d bytes free, %d needed): %w: %w", st.Frsize*st.Bavail, size, syscall.ENOSPC, err)
	}
	return err
}

// tempSuffix returns 32 random hex characters, as restic uses.
func tempSuffix() string {
	var buf [16]byte
	_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails on Linux and panics rather than return short
	return hex.EncodeToString(buf[:])
}

func (b *Backend) addOrphan(name string) {
	b.orphanMu.Lock()
	defer b.orphanMu.Unlock()
	if len(b.orphans) < maxOrphans {
		b.orphans = append(b.orphans, name)
	}
}

// removeOrphans removes, best effort, the temporary files that earlier
// Saves left when their connection died.
func (b *Backend) removeOrphans(c *conn) {
	b.orphanMu.Lock()
	todo := b.orphans
	b.orphans = nil
	b.orphanMu.Unlock()
	for i, name := range todo {
		err := c.sftp.Remove(name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && c.broken(err) {
			for _, n := range todo[i:] {
				b.addOrphan(n)
			}
			return
		}
	}
}
