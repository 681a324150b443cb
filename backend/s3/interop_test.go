package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/internal/testtools"
)

// restic runs the oracle binary with a minimal environment; credentials
// travel in environment variables, never on the command line.
func restic(t *testing.T, srv *testserver.S3, args ...string) string {
	t.Helper()
	bin := testtools.Binary(t, "restic")
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + home,
		"RESTIC_CACHE_DIR=" + filepath.Join(home, "cache"),
		"RESTIC_PASSWORD=interop-test",
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"AWS_DEFAULT_REGION=" + srv.Region,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("restic %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestResticInterop: restic writes a repository into the bucket, cairn
// reads every object of it, copies it object by object under another
// prefix, and restic checks and restores the copy.
func TestResticInterop(t *testing.T) {
	for _, kind := range testserver.S3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := testserver.S3Server(t, kind, testserver.S3Options{})
			src := t.TempDir()
			files := map[string][]byte{
				"a.txt":     []byte("hello from restic\n"),
				"dir/b.bin": backendtest.Random(43, 2<<20+5),
			}
			for name, data := range files {
				p := filepath.Join(src, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			restic(t, srv, "-r", srv.Repo("interop", "restic-made"), "init")
			restic(t, srv, "-r", srv.Repo("interop", "restic-made"), "backup", "--host", "interop", src)

			a := open(t, config(t, srv, "interop", "restic-made"))
			cfg, err := backend.LoadAll(t.Context(), a, backend.Handle{Type: backend.ConfigFile})
			if err != nil || len(cfg) < 32 {
				t.Fatalf("load restic's config: %d bytes, %v", len(cfg), err)
			}
			counts := map[backend.FileType]int{}
			var all []backend.Handle
			var data [][]byte
			for _, ft := range backend.AllTypes {
				err := a.List(t.Context(), ft, func(fi backend.FileInfo) error {
					h := backend.Handle{Type: ft, Name: fi.Name}
					b, err := backend.LoadAll(t.Context(), a, h)
					if err != nil {
						return err
					}
					if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != fi.Name || int64(len(b)) != fi.Size {
						t.Errorf("%v: content does not match its name and listed size", h)
					}
					if ft == backend.KeyFile {
						var key struct{ KDF string }
						if err := json.Unmarshal(b, &key); err != nil || key.KDF != "scrypt" {
							t.Errorf("key %v does not look like restic's: %v", h, err)
						}
					}
					counts[ft]++
					all, data = append(all, h), append(data, b)
					return nil
				})
				if err != nil {
					t.Fatalf("list %v: %v", ft, err)
				}
			}
			if counts[backend.KeyFile] != 1 || counts[backend.SnapshotFile] != 1 || counts[backend.PackFile] < 2 {
				t.Fatalf("restic's repository holds %v, want 1 key, 1 snapshot and data and tree packs", counts)
			}

			b := create(t, config(t, srv, "interop", "cairn/copy"))
			for i, h := range all {
				if err := b.Save(t.Context(), h, backend.NewByteReader(data[i], i%2 == 0)); err != nil {
					t.Fatalf("save %v: %v", h, err)
				}
			}
			if err := b.Save(t.Context(), backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader(cfg, true)); err != nil {
				t.Fatalf("save config: %v", err)
			}
			out := restic(t, srv, "-r", srv.Repo("interop", "cairn/copy"), "check", "--read-data")
			if !strings.Contains(out, "no errors were found") {
				t.Fatalf("restic check of cairn's copy:\n%s", out)
			}
			target := t.TempDir()
			restic(t, srv, "-r", srv.Repo("interop", "cairn/copy"), "restore", "latest", "--target", target)
			for name, want := range files {
				got, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(strings.TrimPrefix(src, "/")), filepath.FromSlash(name)))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("restored %s differs from the original (%v)", name, err)
				}
			}
		})
	}
}
