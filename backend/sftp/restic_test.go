package sftp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/testtools"
)

// resticSFTP returns restic's repository string and the "-o sftp.args=…"
// that make restic's ssh use the test server's key and known_hosts and
// nothing of the machine's own configuration.
func resticSFTP(s *sshtest.Server, dir string) (repo string, opt []string) {
	args := fmt.Sprintf("-F /dev/null -i %s -p %d -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null "+
		"-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o LogLevel=ERROR",
		s.UserKey.Path, s.Port, s.KnownHosts)
	return "sftp:" + s.User + "@" + s.Host + ":" + dir, []string{"-o", "sftp.args=" + args}
}

func listNames(t *testing.T, be backend.Backend, ft backend.FileType) map[string]int64 {
	t.Helper()
	names := map[string]int64{}
	if err := be.List(t.Context(), ft, func(fi backend.FileInfo) error {
		names[fi.Name] = fi.Size
		return nil
	}); err != nil {
		t.Fatalf("List(%v): %v", ft, err)
	}
	return names
}

// TestResticInterop: a repository restic made over its own SFTP backend
// (ssh binary) is read by cairn's, file by file; files cairn's backend
// saves are listed, decrypted and checked by restic; and a whole copy of
// the repository written through cairn's backend passes
// `restic check --read-data` and restores.
func TestResticInterop(t *testing.T) {
	r := oracle.New(t) // before isolate: the tool cache is under the real $HOME
	isolate(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		testtools.Unavailable(t, "restic's SFTP backend runs the ssh client (openssh-client): %v", err)
	}
	s := sshtest.Start(t)

	// cairn creates the layout, restic initialises into it.
	dir := filepath.Join(t.TempDir(), "repo")
	be := create(t, config(t, s, dir))
	repo, opt := resticSFTP(s, dir)
	r.Init(repo, 2, opt...)

	src := t.TempDir()
	for i := range 5 {
		name := filepath.Join(src, fmt.Sprintf("file%d", i))
		if err := os.WriteFile(name, backendtest.Random(uint64(10+i), 300000*i+17), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.Backup(repo, []string{src}, opt...)

	// cairn reads what restic wrote: every name, size and content hash.
	resticTypes := map[backend.FileType]string{
		backend.KeyFile: "keys", backend.SnapshotFile: "snapshots", backend.IndexFile: "index", backend.PackFile: "packs",
	}
	for ft, name := range resticTypes {
		got := listNames(t, be, ft)
		want := resticList(r, repo, name, opt)
		if !slices.Equal(sortedKeys(got), want) {
			t.Fatalf("cairn lists %v %q, restic lists %q", ft, sortedKeys(got), want)
		}
		for id, size := range got {
			data := loadAll(t, be, backend.Handle{Type: ft, Name: id})
			if int64(len(data)) != size {
				t.Errorf("%v %s: loaded %d bytes, listed %d", ft, id, len(data), size)
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != id {
				t.Errorf("%v %s: content hashes to %x", ft, id, sum)
			}
		}
	}

	// cairn saves a key file (plain JSON, so a re-indented copy is a valid
	// second key for the same password): restic must list and use it.
	var keyID string
	for id := range listNames(t, be, backend.KeyFile) {
		keyID = id
	}
	key := loadAll(t, be, backend.Handle{Type: backend.KeyFile, Name: keyID})
	newKey := append(bytes.Clone(key), '\n')
	newID := save(t, be, backend.KeyFile, newKey).Name
	if fi, err := os.Stat(filepath.Join(dir, "keys", newID)); err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("key saved by cairn: %v, %v; want mode 0400", fi, err)
	}
	if ids := resticList(r, repo, "keys", opt); !slices.Contains(ids, newID) {
		t.Fatalf("restic list keys = %q, misses %s saved by cairn", ids, newID)
	}
	var keys []oracle.Key
	r.RunJSON(repo, &keys, append(opt, "key", "list")...)
	if len(keys) != 2 {
		t.Fatalf("restic key list shows %d keys, want 2: %+v", len(keys), keys)
	}
	r.MustCheck(repo, false, opt...)

	// A copy made entirely through cairn's backend is a repository restic
	// fully accepts.
	copyDir := filepath.Join(t.TempDir(), "copy")
	dst := create(t, config(t, s, copyDir))
	cfgData := loadAll(t, be, backend.Handle{Type: backend.ConfigFile})
	if err := dst.Save(t.Context(), backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader(cfgData, false)); err != nil {
		t.Fatal(err)
	}
	for ft := range resticTypes {
		for id := range listNames(t, be, ft) {
			h := backend.Handle{Type: ft, Name: id}
			if err := dst.Save(t.Context(), h, backend.NewByteReader(loadAll(t, be, h), false)); err != nil {
				t.Fatalf("copy %v: %v", h, err)
			}
		}
	}
	copyRepo, copyOpt := resticSFTP(s, copyDir)
	r.MustCheck(copyRepo, true, copyOpt...)
	target := t.TempDir()
	r.Restore(copyRepo, "latest", target, copyOpt...)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(target, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("restored %s differs from the original (%v)", p, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// resticList is oracle.List with the sftp options.
func resticList(r *oracle.Restic, repo, fileType string, opt []string) []string {
	ids := strings.Fields(string(r.MustRun(repo, append(slices.Clone(opt), "list", fileType)...).Stdout))
	slices.Sort(ids)
	return ids
}

func sortedKeys(m map[string]int64) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
