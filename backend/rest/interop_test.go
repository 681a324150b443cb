package rest

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
func restic(t *testing.T, env []string, args ...string) string {
	t.Helper()
	bin := testtools.Binary(t, "restic")
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + home,
		"RESTIC_CACHE_DIR=" + filepath.Join(home, "cache"),
		"RESTIC_PASSWORD=interop-test",
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("restic %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestResticInterop: restic writes a repository through rest-server, cairn
// reads every file of it, copies it file by file into a second repository,
// and restic checks and restores the copy. rest-server verifies that every
// uploaded file hashes to its name.
func TestResticInterop(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{Users: map[string]string{"restic": password}})
	env := []string{"RESTIC_REST_USERNAME=restic", "RESTIC_REST_PASSWORD=" + password}

	src := t.TempDir()
	files := map[string][]byte{
		"a.txt":          []byte("hello from restic\n"),
		"dir/b.bin":      backendtest.Random(42, 3<<20+17),
		"dir/sub/c.json": []byte(`{"x":1}`),
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
	repoA := srv.Repo("", "", "restic-made")
	restic(t, env, "-r", repoA, "init")
	restic(t, env, "-r", repoA, "backup", "--host", "interop", src)

	a := openRest(t, srv, srv.Repo("restic", password, "restic-made"))
	cfg, err := backend.LoadAll(t.Context(), a, backend.Handle{Type: backend.ConfigFile})
	if err != nil || len(cfg) < 32 {
		t.Fatalf("load restic's config: %d bytes, %v", len(cfg), err)
	}
	counts := map[backend.FileType]int{}
	type file struct {
		h    backend.Handle
		data []byte
	}
	var all []file
	for _, ft := range backend.AllTypes {
		err := a.List(t.Context(), ft, func(fi backend.FileInfo) error {
			h := backend.Handle{Type: ft, Name: fi.Name}
			data, err := backend.LoadAll(t.Context(), a, h)
			if err != nil {
				return err
			}
			if int64(len(data)) != fi.Size {
				t.Errorf("%v: listed with %d bytes, loaded %d", h, fi.Size, len(data))
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != fi.Name {
				t.Errorf("%v: content does not hash to its name", h)
			}
			counts[ft]++
			all = append(all, file{h, data})
			return nil
		})
		if err != nil {
			t.Fatalf("list %v: %v", ft, err)
		}
	}
	if counts[backend.KeyFile] != 1 || counts[backend.SnapshotFile] != 1 || counts[backend.IndexFile] < 1 || counts[backend.PackFile] < 2 {
		t.Fatalf("restic's repository holds %v, want 1 key, 1 snapshot, an index and data and tree packs", counts)
	}
	for _, f := range all {
		if f.h.Type != backend.KeyFile {
			continue
		}
		var key struct {
			KDF  string `json:"kdf"`
			Data []byte `json:"data"`
			Salt []byte `json:"salt"`
		}
		if err := json.Unmarshal(f.data, &key); err != nil || key.KDF != "scrypt" || len(key.Data) == 0 || len(key.Salt) == 0 {
			t.Fatalf("key file %v does not look like restic's: %v %+v", f.h, err, key)
		}
	}

	// Copy the repository through cairn's backend, config last, as a writer
	// must order it.
	b := createRest(t, srv, "restic", password, "cairn-copy")
	for _, f := range all {
		if err := b.Save(t.Context(), f.h, backend.NewByteReader(f.data, false)); err != nil {
			t.Fatalf("save %v: %v", f.h, err)
		}
	}
	if err := b.Save(t.Context(), backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader(cfg, false)); err != nil {
		t.Fatalf("save config: %v", err)
	}

	repoB := srv.URL.String() + strings.TrimPrefix(b.base.Path, "/")
	repoB = "rest:" + repoB
	out := restic(t, env, "-r", repoB, "check", "--read-data")
	if !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check of cairn's copy:\n%s", out)
	}
	target := t.TempDir()
	restic(t, env, "-r", repoB, "restore", "latest", "--target", target)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(strings.TrimPrefix(src, "/")), filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("restored %s differs from the original (%v)", name, err)
		}
	}
}
