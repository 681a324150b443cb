package sftp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/sshx"
	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/sftp"
)

// collect walks src and returns its entries by host path.
func collect(t *testing.T, src sources.Source) map[string]sources.Entry {
	t.Helper()
	v := &collector{entries: map[string]sources.Entry{}}
	if err := src.Walk(t.Context(), sources.WalkOptions{}, v); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return v.entries
}

type collector struct{ entries map[string]sources.Entry }

func (c *collector) Visit(_ context.Context, e *sources.Entry) error {
	c.entries[e.HostPath] = *e
	return nil
}
func (c *collector) LeaveDir(context.Context, string) error { return nil }

func open(t *testing.T, cfg sftp.Config) *sftp.Source {
	t.Helper()
	src, err := sftp.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// Owner names come from the server through OpenSSH's extension, the same
// names the server's own user database gives, "" where it has none; a
// server without the extension is read for /etc/passwd and /etc/group.
func TestOwnerNames(t *testing.T) {
	if os.Geteuid() != 0 {
		testtools.Unavailable(t, "needs root to chown")
	}
	srv := sshtest.Start(t)
	dir := t.TempDir()
	ids := []int{0, 1, 54321}
	for _, id := range ids {
		p := filepath.Join(dir, strconv.Itoa(id))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, id, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []bool{false, true} {
		t.Run(map[bool]string{false: "Extension", true: "Table"}[table], func(t *testing.T) {
			sftp.UseOwnerTable(table)
			defer sftp.UseOwnerTable(false)
			src := open(t, config(srv, dir))
			if src.Info().Has&sources.HasOwnerNames == 0 {
				t.Fatal("the source names no owners")
			}
			entries := collect(t, src)
			for _, id := range ids {
				e, ok := entries[filepath.Join(dir, strconv.Itoa(id))]
				if !ok {
					t.Fatalf("file %d not visited", id)
				}
				wantUser, wantGroup := "", ""
				if u, err := user.LookupId(strconv.Itoa(id)); err == nil {
					wantUser = u.Username
				}
				if g, err := user.LookupGroupId(strconv.Itoa(id)); err == nil {
					wantGroup = g.Name
				}
				if e.UID != uint32(id) || e.GID != uint32(id) || e.User != wantUser || e.Group != wantGroup {
					t.Errorf("owner of file %d: %d:%d %q:%q, want %d:%d %q:%q", id, e.UID, e.GID, e.User, e.Group, id, id, wantUser, wantGroup)
				}
			}
			if entries[filepath.Join(dir, "0")].User != "root" {
				t.Error("root not named: the test proves nothing")
			}
		})
	}
}

// A file is read to its end as it is when read: grown or shrunk since it
// was listed.
func TestReadChangedFile(t *testing.T) {
	srv := sshtest.Start(t)
	dir := t.TempDir()
	grow, shrink := filepath.Join(dir, "grow"), filepath.Join(dir, "shrink")
	small := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	large := bytes.Repeat([]byte("fedcba9876543210"), 70000) // > 4 blocks
	for p, data := range map[string][]byte{grow: small, shrink: large} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := open(t, config(srv, dir))
	entries := collect(t, src)
	for p, data := range map[string][]byte{grow: large, shrink: small} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		e := entries[p]
		rc, err := e.Open(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s listed with %d bytes, now %d: read %d bytes, %v", filepath.Base(p), e.Size, len(data), len(got), err)
		}
	}
	// Deleted after the walk: the error says it vanished.
	if err := os.Remove(grow); err != nil {
		t.Fatal(err)
	}
	if _, err := entries[grow].Open(t.Context()); !errors.Is(err, sources.ErrVanished) {
		t.Errorf("Open of a deleted file: %v, want sources.ErrVanished", err)
	}
	// Closed: Open and Walk fail.
	src.Close()
	if _, err := entries[shrink].Open(t.Context()); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
	if err := src.Walk(t.Context(), sources.WalkOptions{}, &collector{entries: map[string]sources.Entry{}}); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Walk after Close: %v", err)
	}
}

// A dropped connection fails reads and walks promptly instead of hanging.
func TestConnectionDropped(t *testing.T) {
	srv := sshtest.Start(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	src := open(t, config(srv, dir))
	entries := collect(t, src)
	rc, err := entries[big].Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	if n := srv.DropConnections(t); n == 0 {
		t.Fatal("no connection to drop")
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, rc)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, sftp.ErrConnectionLost) {
			t.Errorf("reading on after the connection dropped: %v, want sftp.ErrConnectionLost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a read hangs after the connection dropped")
	}
	// The walk ends with the error even when OnError would skip entries:
	// what lies beyond is unknown, not unreadable.
	skip := func(string, error) error { return nil }
	if err := src.Walk(t.Context(), sources.WalkOptions{OnError: skip}, &collector{entries: map[string]sources.Entry{}}); !errors.Is(err, sftp.ErrConnectionLost) {
		t.Errorf("a walk over a dropped connection: %v, want sftp.ErrConnectionLost", err)
	}
	if _, err := entries[big].Open(t.Context()); !errors.Is(err, sftp.ErrConnectionLost) {
		t.Errorf("Open over a dropped connection: %v, want sftp.ErrConnectionLost", err)
	}
}

// Host keys are checked like the SFTP backend checks them, and a missing
// path is named.
func TestOpenRefuses(t *testing.T) {
	srv := sshtest.Start(t)
	dir := t.TempDir()

	cfg := config(srv, dir)
	cfg.KnownHosts = filepath.Join(t.TempDir(), "empty")
	_, err := sftp.Open(t.Context(), cfg)
	var unknown *sshx.UnknownHostKeyError
	if !errors.As(err, &unknown) || !errors.Is(err, sshx.ErrHostKey) {
		t.Errorf("unknown host key: %v, want an UnknownHostKeyError", err)
	}

	cfg = config(srv, dir)
	cfg.HostKey = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, err := sftp.Open(t.Context(), cfg); !errors.Is(err, sshx.ErrHostKey) {
		t.Errorf("pinned fingerprint mismatch: %v", err)
	}
	cfg.HostKey = srv.HostKeyFingerprint
	cfg.KnownHosts = ""
	open(t, cfg) // the right pin alone is enough

	missing := filepath.Join(dir, "missing")
	_, err = sftp.Open(t.Context(), config(srv, dir, missing))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing path: %v, want fs.ErrNotExist naming %s", err, missing)
	}
	if _, err := sftp.Open(t.Context(), config(srv, "relative")); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("relative path: %v", err)
	}
}

// recorder keeps the visit order, for layout checks.
type recorder struct{ events []string }

func (r *recorder) Visit(_ context.Context, e *sources.Entry) error {
	r.events = append(r.events, e.Path+"="+e.HostPath)
	return nil
}

func (r *recorder) LeaveDir(_ context.Context, p string) error {
	r.events = append(r.events, "leave "+p)
	return nil
}

// "/" puts the remote root's entries at the snapshot root, excludes apply
// to them (they are not targets), and a target inside another adds
// nothing. The server is chrooted to a small tree to have a root worth
// walking.
func TestRootAndNestedTargets(t *testing.T) {
	if os.Geteuid() != 0 {
		testtools.Unavailable(t, "sshd's ChrootDirectory needs root")
	}
	// Every component of a chroot must be root-owned and writable by
	// nobody else, which rules out /tmp (mode 1777).
	root, err := os.MkdirTemp("/run", "cairn-sftp-chroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"srv/app/sub", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"srv/app/sub/f", "etc/conf", "etc/skip.log"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := sshtest.StartWith(t, sshtest.Options{ExtraConfig: []string{"ChrootDirectory " + root}})

	walk := func(opts sources.WalkOptions, paths ...string) []string {
		t.Helper()
		src := open(t, config(srv, paths...))
		r := &recorder{}
		if err := src.Walk(t.Context(), opts, r); err != nil {
			t.Fatal(err)
		}
		return r.events
	}
	got := walk(sources.WalkOptions{Exclude: excludeSuffix(".log")}, "/")
	want := []string{
		"etc=/etc", "etc/conf=/etc/conf", "leave etc",
		"srv=/srv", "srv/app=/srv/app", "srv/app/sub=/srv/app/sub", "srv/app/sub/f=/srv/app/sub/f",
		"leave srv/app/sub", "leave srv/app", "leave srv", "leave ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk of /:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = walk(sources.WalkOptions{}, "/srv/app/sub", "/srv/app", "/etc/conf")
	want = []string{
		"etc=/etc", "etc/conf=/etc/conf", "leave etc",
		"srv=/srv", "srv/app=/srv/app", "srv/app/sub=/srv/app/sub", "srv/app/sub/f=/srv/app/sub/f",
		"leave srv/app/sub", "leave srv/app", "leave srv", "leave ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk of nested targets:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// excludeSuffix is a plain Excluder (without sources/filter's optional
// methods) leaving out names with a suffix.
type excludeSuffix string

func (x excludeSuffix) Excluded(e *sources.Entry) bool {
	return strings.HasSuffix(e.HostPath, string(x))
}
func (excludeSuffix) ExcludedByContents(*sources.Entry, func(string, int) ([]byte, error)) bool {
	return false
}

// A server whose sftp subsystem never answers fails Open in bounded time
// with a message that says so, instead of hanging the backup.
func TestSubsystemThatNeverAnswers(t *testing.T) {
	srv := sshtest.StartWith(t, sshtest.Options{ExtraConfig: []string{"ForceCommand sleep 600"}})
	sftp.SetStartTimeout(t, 2*time.Second)
	start := time.Now()
	_, err := sftp.Open(t.Context(), config(srv, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "did not answer within 2s") {
		t.Fatalf("Open against a silent subsystem: err = %v, want a start timeout", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Open took %v to give up", d)
	}
}
