package restore_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/sources"
)

// dirSource is a minimal local file-system source for these tests: it
// walks one directory with lstat and records everything restic does
// (sources/local is the real one; the restore tests must not depend on
// its options). The directory's contents go to the snapshot root.
type dirSource struct{ root string }

func (s dirSource) Info() sources.Info {
	return sources.Info{
		Hostname: "restore-test",
		Paths:    []string{s.root},
		Has: sources.HasInode | sources.HasDeviceID | sources.HasLinks | sources.HasChangeTime |
			sources.HasAccessTime | sources.HasXattrs | sources.HasSubsecondTimes | sources.HasDevices,
	}
}

func (s dirSource) Close() error { return nil }

func (s dirSource) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	if err := s.walkDir(ctx, "", v); err != nil {
		return err
	}
	return v.LeaveDir(ctx, "")
}

func (s dirSource) walkDir(ctx context.Context, rel string, v sources.Visitor) error {
	dir := filepath.Join(s.root, rel)
	ents, err := os.ReadDir(dir) // sorted by name, as raw bytes
	if err != nil {
		return err
	}
	for _, de := range ents {
		p := de.Name()
		if rel != "" {
			p = rel + "/" + de.Name()
		}
		e, err := s.entry(p)
		if err != nil {
			return err
		}
		if err := v.Visit(ctx, e); err != nil {
			return err
		}
		if e.Type == sources.Dir {
			if err := s.walkDir(ctx, p, v); err != nil {
				return err
			}
			if err := v.LeaveDir(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s dirSource) entry(rel string) (*sources.Entry, error) {
	host := filepath.Join(s.root, rel)
	fi, err := os.Lstat(host)
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	e := &sources.Entry{
		Path: rel, HostPath: host, Mode: fi.Mode(), Size: st.Size,
		ModTime:    time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		AccessTime: time.Unix(st.Atim.Sec, st.Atim.Nsec),
		ChangeTime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		UID:        st.Uid, GID: st.Gid, Inode: st.Ino, DeviceID: st.Dev, Links: st.Nlink,
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		e.Type = sources.File
		// O_NOATIME: reading must not move the access times the restore
		// is compared against.
		e.Open = func(context.Context) (io.ReadCloser, error) {
			return os.OpenFile(host, os.O_RDONLY|unix.O_NOATIME, 0)
		}
	case m.IsDir():
		e.Type = sources.Dir
	case m&fs.ModeSymlink != 0:
		e.Type = sources.Symlink
		if e.LinkTarget, err = os.Readlink(host); err != nil {
			return nil, err
		}
	case m&fs.ModeNamedPipe != 0:
		e.Type = sources.FIFO
	case m&fs.ModeSocket != 0:
		e.Type = sources.Socket
	case m&fs.ModeCharDevice != 0:
		e.Type, e.Device = sources.CharDev, st.Rdev
	case m&fs.ModeDevice != 0:
		e.Type, e.Device = sources.Dev, st.Rdev
	default:
		e.Type = sources.Irregular
	}
	e.Xattrs, err = readXattrs(host)
	return e, err
}

func readXattrs(p string) ([]sources.Xattr, error) {
	n, err := unix.Llistxattr(p, nil)
	if err != nil || n == 0 {
		return nil, nil // no xattr support: none
	}
	buf := make([]byte, n)
	n, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var out []sources.Xattr
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		sz, err := unix.Lgetxattr(p, string(name), nil)
		if err != nil {
			return nil, err
		}
		val := make([]byte, sz)
		if sz > 0 {
			if sz, err = unix.Lgetxattr(p, string(name), val); err != nil {
				return nil, err
			}
		}
		out = append(out, sources.Xattr{Name: string(name), Value: val[:sz]})
	}
	return out, nil
}

// newRepo creates a repository on the in-memory backend, or with onDisk a
// local one under t.TempDir() (its path is returned).
func newRepo(t testing.TB, onDisk bool, iopts repo.InitOptions) (*repo.Repository, string) {
	t.Helper()
	ctx := context.Background()
	var be backend.Backend = mem.New()
	dir := ""
	if onDisk {
		dir = filepath.Join(t.TempDir(), "repo")
		lb, err := local.Create(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		be = lb
	}
	iopts.Key = repo.KeyOptions{Params: &crypto.TestParams}
	r, err := repo.Init(ctx, be, "test", iopts, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// openLocal opens a repository on disk (restic's or ours) with password
// "test".
func openLocal(t testing.TB, dir string) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, "test", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// backupDir backs dir up into r with cairn's pipeline and returns the
// snapshot. Access times are recorded so that restores can be checked for
// them.
func backupDir(t testing.TB, r *repo.Repository, dir string) *repo.Snapshot {
	t.Helper()
	res, err := backup.Run(context.Background(), r, dirSource{dir}, backup.Options{
		Location: time.UTC, WithAtime: true, NoParent: true,
		Warn: func(p string, err error) { t.Errorf("backup warning %s: %v", p, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Snapshot
}

// copyTree copies a directory tree with everything cp -a keeps (modes,
// owners, times, xattrs, links), to give two restores the same start.
// Reading a file moves its access time (relatime does whenever it is not
// after the mtime), so the times of regular files are put back on both
// sides afterwards.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	type times struct{ atime, mtime unix.Timespec }
	saved := map[string]times{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		saved[rel] = times{st.Atim, st.Mtim}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cp", "-a", "--preserve=all", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
	for rel, ts := range saved {
		for _, root := range []string{src, dst} {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, rel), []unix.Timespec{ts.atime, ts.mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatal(err)
			}
		}
	}
}
