package sftp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/sftp"
	"github.com/cairn-backup/cairn/internal/sshtest"
)

func save(t *testing.T, be backend.Backend, ft backend.FileType, data []byte) backend.Handle {
	t.Helper()
	h := backendtest.HandleFor(ft, data)
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
	return h
}

func loadAll(t *testing.T, be backend.Backend, h backend.Handle) []byte {
	t.Helper()
	data, err := backend.LoadAll(t.Context(), be, h)
	if err != nil {
		t.Fatalf("Load(%v): %v", h, err)
	}
	return data
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestLayoutAndModes checks on disk (the test server is local) what the
// backend made: restic's directories with 0700, files 0400, no temporary
// files left, and 0770/0440 once the config is group-readable.
func TestLayoutAndModes(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	dir := filepath.Join(t.TempDir(), "parent", "repo")
	be := create(t, config(t, s, dir))
	for _, d := range backend.Dirs(dir) {
		if m := mode(t, d); m != 0o700 {
			t.Fatalf("%s has mode %04o, want 0700", d, m)
		}
	}
	cfg := save(t, be, backend.ConfigFile, []byte("config"))
	pack := save(t, be, backend.PackFile, backendtest.Random(1, 100000))
	for _, h := range []backend.Handle{cfg, pack} {
		if m := mode(t, backend.Path(dir, h)); m != 0o400 {
			t.Errorf("%v has mode %04o, want 0400", h, m)
		}
	}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if strings.Contains(p, "-restic-temp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// A group-shared repository: new directories and files follow suit.
	if err := os.Chmod(backend.Path(dir, cfg), 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	shared, err := sftp.Open(t.Context(), config(t, s, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	snap := save(t, shared, backend.SnapshotFile, []byte("snapshot"))
	if m := mode(t, filepath.Join(dir, "snapshots")); m != 0o770 {
		t.Errorf("snapshots/ made on demand in a shared repository has mode %04o, want 0770", m)
	}
	if m := mode(t, backend.Path(dir, snap)); m != 0o440 {
		t.Errorf("file saved in a shared repository has mode %04o, want 0440", m)
	}
}

// TestMissingDirectoriesCreatedOnDemand: a repository whose data/XX or
// type directories were removed (or never made) still takes new files.
func TestMissingDirectoriesCreatedOnDemand(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	dir := filepath.Join(t.TempDir(), "repo")
	be := create(t, config(t, s, dir))
	for _, d := range []string{"data", "keys"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	data := backendtest.Random(2, 5000)
	for _, ft := range []backend.FileType{backend.PackFile, backend.KeyFile} {
		h := save(t, be, ft, data)
		if got := loadAll(t, be, h); !bytes.Equal(got, data) {
			t.Fatalf("Load(%v) after saving into a missing directory returned other data", h)
		}
	}
}

func TestOpenMissingRepository(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	_, err := sftp.Open(t.Context(), config(t, s, filepath.Join(t.TempDir(), "nothing-here")))
	if !errors.Is(err, backend.ErrNoRepository) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing directory: err = %v, want ErrNoRepository and fs.ErrNotExist", err)
	}
}

func TestCommandRefused(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	cfg := config(t, s, t.TempDir())
	cfg.Command = "ssh -p 22 host -s sftp"
	_, err := sftp.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "sftp.command is not supported") {
		t.Fatalf("Open with sftp.command: err = %v, want a clear refusal", err)
	}
}

// TestPlainRename runs the conformance suite on the path for servers
// without posix-rename: a plain SFTP rename that refuses to replace.
func TestPlainRename(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		be := create(t, config(t, s, filepath.Join(t.TempDir(), "repo")))
		sftp.SetPosixRename(be, false)
		if be.HasAtomicReplace() {
			t.Fatal("HasAtomicReplace without posix-rename")
		}
		return be
	})
}

// TestConnectionsSpread holds more operations open at once than there
// are connections: the backend opens exactly Connections connections and
// spreads the operations over them.
func TestConnectionsSpread(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	cfg := config(t, s, filepath.Join(t.TempDir(), "repo"))
	cfg.Connections = 3
	be := create(t, cfg)
	h := save(t, be, backend.PackFile, backendtest.Random(3, 1000))
	if n := s.Connections(t); n < 1 || n > 3 {
		t.Fatalf("%d connections after Create with Connections=3", n)
	}

	const ops = 7
	var inside sync.WaitGroup
	inside.Add(ops)
	release := make(chan struct{})
	errs := make(chan error, ops)
	for range ops {
		go func() {
			errs <- be.Load(t.Context(), h, 0, 0, func(rd io.Reader) error {
				inside.Done()
				<-release // every Load is in fn, holding its connection slot
				_, err := io.Copy(io.Discard, rd)
				return err
			})
		}()
	}
	inside.Wait()
	if n := s.Connections(t); n != 3 {
		t.Errorf("%d operations at once opened %d connections, want 3", ops, n)
	}
	close(release)
	for range ops {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// hookReader calls hook once when at bytes have been read.
type hookReader struct {
	*backend.ByteReader
	at      int64
	read    int64
	hook    func()
	once    sync.Once
	rewinds atomic.Int32
}

func (r *hookReader) Read(p []byte) (int, error) {
	n, err := r.ByteReader.Read(p)
	r.read += int64(n)
	if r.read >= r.at {
		r.once.Do(r.hook)
	}
	return n, err
}

func (r *hookReader) Rewind() error {
	r.rewinds.Add(1)
	r.read = 0
	return r.ByteReader.Rewind()
}

// TestReconnect kills the server side of every connection, idle and in the
// middle of transfers: each operation retries once on a new connection
// and succeeds, with the data intact.
func TestReconnect(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	dir := filepath.Join(t.TempDir(), "repo")
	be := create(t, config(t, s, dir))
	small := save(t, be, backend.KeyFile, []byte("key"))
	big := backendtest.Random(4, 8<<20)
	bigH := save(t, be, backend.PackFile, big)

	t.Run("idle", func(t *testing.T) {
		if s.DropConnections(t) == 0 {
			t.Fatal("no connection to drop")
		}
		if got := loadAll(t, be, small); string(got) != "key" {
			t.Fatalf("Load after the drop: %q", got)
		}
		if _, err := be.Stat(t.Context(), bigH); err != nil {
			t.Fatalf("Stat after the drop: %v", err)
		}
	})

	t.Run("during save", func(t *testing.T) {
		data := backendtest.Random(5, 6<<20)
		h := backendtest.HandleFor(backend.PackFile, data)
		rd := &hookReader{ByteReader: backend.NewByteReader(data, false), at: 3 << 20, hook: func() { s.DropConnections(t) }}
		if err := be.Save(t.Context(), h, rd); err != nil {
			t.Fatalf("Save with the connection dropped half way: %v", err)
		}
		if rd.rewinds.Load() != 1 {
			t.Errorf("reader rewound %d times, want 1 (one retry)", rd.rewinds.Load())
		}
		if got := loadAll(t, be, h); !bytes.Equal(got, data) {
			t.Fatal("file saved across a dropped connection has wrong content")
		}
	})

	t.Run("during load", func(t *testing.T) {
		calls := 0
		var got []byte
		err := be.Load(t.Context(), bigH, 0, 0, func(rd io.Reader) error {
			calls++
			buf := make([]byte, 1<<20)
			if _, err := io.ReadFull(rd, buf); err != nil {
				return err
			}
			if calls == 1 {
				s.DropConnections(t)
			}
			rest, err := io.ReadAll(rd)
			got = append(buf, rest...)
			return err
		})
		if err != nil {
			t.Fatalf("Load with the connection dropped half way: %v", err)
		}
		if calls != 2 {
			t.Errorf("fn called %d times, want 2", calls)
		}
		if !bytes.Equal(got, big) {
			t.Fatal("Load across a dropped connection returned wrong data")
		}
	})

	t.Run("list and remove", func(t *testing.T) {
		s.DropConnections(t)
		n := 0
		if err := be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("List after the drop saw %d packs, want 2", n)
		}
		s.DropConnections(t)
		if err := be.Remove(t.Context(), small); err != nil {
			t.Fatalf("Remove after the drop: %v", err)
		}
	})

	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if strings.Contains(p, "-restic-temp-") {
			t.Logf("temporary file of the interrupted upload: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestContextAbortsHungServer: when the server stops answering (a frozen
// network path), an operation returns when its context ends instead of
// hanging.
func TestContextAbortsHungServer(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	p := sshtest.NewProxy(t, s.Addr())
	cfg := config(t, s, filepath.Join(t.TempDir(), "repo"))
	cfg.Port = p.Port()
	cfg.KnownHosts = ""
	cfg.HostKey = s.HostKeyFingerprint // the proxy's port is not in known_hosts
	cfg.Connections = 1
	be := create(t, cfg)
	h := save(t, be, backend.SnapshotFile, []byte("snapshot"))
	p.Freeze()

	for name, op := range map[string]func(ctx context.Context) error{
		"load": func(ctx context.Context) error {
			return be.Load(ctx, h, 0, 0, func(io.Reader) error { return nil })
		},
		"save": func(ctx context.Context) error {
			return be.Save(ctx, backendtest.HandleFor(backend.KeyFile, []byte("k")), backend.NewByteReader([]byte("k"), false))
		},
		"list": func(ctx context.Context) error {
			return be.List(ctx, backend.SnapshotFile, func(backend.FileInfo) error { return nil })
		},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		start := time.Now()
		err := op(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s on a frozen server: err = %v, want context.DeadlineExceeded", name, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s on a frozen server returned after %v", name, d)
		}
	}
}

// TestConnectionLimit: a server that refuses connections beyond the first
// (per-user limits on NAS boxes and storage services) still serves every
// operation, over the connection that is open.
func TestConnectionLimit(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	p := sshtest.NewProxy(t, s.Addr())
	cfg := config(t, s, filepath.Join(t.TempDir(), "repo"))
	cfg.Port = p.Port()
	cfg.KnownHosts = ""
	cfg.HostKey = s.HostKeyFingerprint
	cfg.Connections = 4
	var warnings atomic.Int32
	cfg.Warnf = func(string, ...any) { warnings.Add(1) }
	be, err := sftp.Open(t.Context(), mustCreate(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	p.RefuseNew(true)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			data := backendtest.Random(uint64(100+i), 200000)
			h := backendtest.HandleFor(backend.PackFile, data)
			if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
				errs <- err
				return
			}
			got, err := backend.LoadAll(t.Context(), be, h)
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("wrong data")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p.Accepted() < 2 {
		t.Errorf("the backend never tried a second connection (%d accepted)", p.Accepted())
	}
	if warnings.Load() == 0 {
		t.Error("no warning about the refused extra connection")
	}
}

// mustCreate creates the repository with a backend of its own and returns
// cfg for opening it again.
func mustCreate(t *testing.T, cfg sftp.Config) sftp.Config {
	t.Helper()
	be, err := sftp.Create(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	be.Close()
	return cfg
}
