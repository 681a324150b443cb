package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
)

// The bad-input tests damage one repository file at a time, the way a disk,
// a network copy or another program would, and run the commands a user would
// run next. Each must fail (or warn) with a message naming the damaged file,
// with restic's exit code, never panic, and never write to the repository
// or the restore target what it cannot stand behind. docs/bad-input.md maps
// the list to these and the package-level tests.

// badRepo is a small repository with one snapshot, its source, and the
// names of its files, to copy and damage.
type badRepo struct {
	dir, src string
	key      string // keys/ID
	snapshot string // snapshots/ID
	index    string // index/ID
}

func newBadRepo(t *testing.T) *badRepo {
	t.Helper()
	b := &badRepo{dir: newRepo(t), src: t.TempDir()}
	writeFiles(t, b.src, map[string]string{
		"a.txt":     "alpha\n",
		"dir/b.txt": strings.Repeat("bravo ", 1000),
		"big.bin":   string(pseudoRandom(3 << 20)),
	})
	newRunner(t).with("RESTIC_PASSWORD="+testPassword).ok("-r", b.dir, "--no-cache", "backup", b.src)
	only := func(sub string) string {
		entries, err := os.ReadDir(filepath.Join(b.dir, sub))
		if err != nil || len(entries) != 1 {
			t.Fatalf("%s/: %d entries, %v; want one", sub, len(entries), err)
		}
		return sub + "/" + entries[0].Name()
	}
	b.key, b.snapshot, b.index = only("keys"), only("snapshots"), only("index")
	return b
}

// pseudoRandom returns n bytes that do not compress, deterministically.
func pseudoRandom(n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte("cairn bad input"))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

// copyRepo gives a subtest its own copy of the repository.
func (b *badRepo) copyRepo(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	err := filepath.WalkDir(b.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.dir, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// repoState lists every file of a repository with its size and content
// hash, to prove a command wrote nothing (locks are left out: a command may
// take and release one).
func repoState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, "locks"+string(filepath.Separator)) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		state[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func diffState(before, after map[string]string) []string {
	var diffs []string
	for name, sum := range after {
		if before[name] != sum {
			diffs = append(diffs, "written: "+name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			diffs = append(diffs, "removed: "+name)
		}
	}
	slices.Sort(diffs)
	return diffs
}

// noPanic fails the test if a run crashed instead of reporting an error.
func noPanic(t *testing.T, res result) {
	t.Helper()
	if res.code == 2 || strings.Contains(res.stderr, "panic:") || strings.Contains(res.stderr, "goroutine ") {
		t.Errorf("crashed:\n%s", res)
	}
}

// replaceSealed replaces the unpacked file name (index/ID or snapshots/ID)
// with a correctly encrypted and correctly named file holding plain, so
// that only the decoder can notice the damage. It returns the new name.
func replaceSealed(t *testing.T, dir, name string, plain []byte) string {
	t.Helper()
	r := openRepo(t, dir)
	ft := backend.IndexFile
	if strings.HasPrefix(name, "snapshots/") {
		ft = backend.SnapshotFile
	}
	id, err := r.SaveUnpacked(context.Background(), ft, plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(name) + "/" + id.String()
}

// replaceKey replaces the key file with raw bytes stored under their own
// SHA-256, as a correctly named but undecodable key file.
func replaceKey(t *testing.T, dir, name string, raw []byte) string {
	t.Helper()
	id := blob.ID(sha256.Sum256(raw))
	if err := os.WriteFile(filepath.Join(dir, "keys", id.String()), raw, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return "keys/" + id.String()
}

// damage is one way to spoil a file; it returns the file's name afterwards.
type damage struct {
	name string
	do   func(t *testing.T, dir, file string) string
}

var rawDamages = []damage{
	{"truncated", func(t *testing.T, dir, file string) string {
		p := filepath.Join(dir, file)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o600)
		if err := os.Truncate(p, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		return file
	}},
	{"flipped-byte", func(t *testing.T, dir, file string) string {
		p := filepath.Join(dir, file)
		os.Chmod(p, 0o600)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x20
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}},
	{"empty", func(t *testing.T, dir, file string) string {
		p := filepath.Join(dir, file)
		os.Chmod(p, 0o600)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}},
}

// sealedDamages spoil the plaintext of an index or snapshot but store it
// encrypted under the right name: the MAC and the name check pass.
var sealedDamages = []damage{
	{"sealed-garbage", func(t *testing.T, dir, file string) string {
		return replaceSealed(t, dir, file, []byte("this is not JSON \x00\xff"))
	}},
	{"sealed-truncated-json", func(t *testing.T, dir, file string) string {
		r := openRepo(t, dir)
		ft := backend.IndexFile
		if strings.HasPrefix(file, "snapshots/") {
			ft = backend.SnapshotFile
		}
		id, err := blob.ParseID(filepath.Base(file))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := r.LoadUnpacked(context.Background(), ft, id)
		if err != nil {
			t.Fatal(err)
		}
		return replaceSealed(t, dir, file, plain[:len(plain)/2])
	}},
	{"sealed-wrong-shape", func(t *testing.T, dir, file string) string {
		// Valid JSON of the wrong shape: IDs that are not hex, a negative
		// length, a tree that is a number.
		if strings.HasPrefix(file, "snapshots/") {
			return replaceSealed(t, dir, file, []byte(`{"time":"2024-01-02T03:04:05Z","tree":12,"paths":["/x"]}`))
		}
		return replaceSealed(t, dir, file, []byte(`{"packs":[{"id":"zz","blobs":[{"id":"00","type":"data","offset":-1,"length":-5}]}]}`))
	}},
}

var keyDamages = []damage{
	{"key-not-json", func(t *testing.T, dir, file string) string {
		return replaceKey(t, dir, file, []byte("{\"kdf\":\"scrypt\",\"N\":"))
	}},
	{"key-bad-params", func(t *testing.T, dir, file string) string {
		// Parameters that would make scrypt allocate terabytes.
		return replaceKey(t, dir, file, []byte(`{"kdf":"scrypt","N":1099511627776,"r":64,"p":64,"salt":"AAAA","data":"AAAA"}`))
	}},
	{"key-short-data", func(t *testing.T, dir, file string) string {
		return replaceKey(t, dir, file, []byte(`{"kdf":"scrypt","N":1024,"r":1,"p":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA==","data":"AAAA"}`))
	}},
}

func fileShortID(file string) string { return filepath.Base(file)[:8] }

// TestBadInputDamagedKey: a key file that is cut short, has a flipped byte,
// is empty or does not decode. cairn cannot open the repository: wrong
// password (12) when the key is merely unreadable with it, as restic, or a
// fatal error (1) naming the key when it does not even parse; always naming
// the key file, and never writing anything.
func TestBadInputDamagedKey(t *testing.T) {
	b := newBadRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	for _, d := range slices.Concat(rawDamages, keyDamages) {
		t.Run(d.name, func(t *testing.T) {
			dir := b.copyRepo(t)
			file := d.do(t, dir, b.key)
			before := repoState(t, dir)
			target := filepath.Join(t.TempDir(), "target")
			for _, args := range [][]string{{"snapshots"}, {"restore", "latest", "--target", target}, {"backup", b.src}} {
				res := r.run(append([]string{"-r", dir, "--no-cache"}, args...)...)
				noPanic(t, res)
				if res.code != exitWrongPassword && res.code != exitFatal {
					t.Errorf("exit %d, want %d or %d:\n%s", res.code, exitWrongPassword, exitFatal, res)
				}
				if !strings.Contains(res.stderr, fileShortID(file)) {
					t.Errorf("the message does not name the key %s:\n%s", fileShortID(file), res)
				}
			}
			if diffs := diffState(before, repoState(t, dir)); len(diffs) > 0 {
				t.Errorf("the repository changed: %v", diffs)
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("restore created its target (%v)", err)
			}
		})
	}
}

// TestBadInputDamagedSnapshot: the only snapshot is damaged. `snapshots`
// warns naming it and lists the rest (exit 0, like restic); `restore
// latest` fails naming it (exit 1) and writes nothing; `backup` warns,
// runs without that parent and saves a new snapshot.
func TestBadInputDamagedSnapshot(t *testing.T) {
	b := newBadRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	for _, d := range slices.Concat(rawDamages, sealedDamages) {
		t.Run(d.name, func(t *testing.T) {
			dir := b.copyRepo(t)
			file := d.do(t, dir, b.snapshot)
			before := repoState(t, dir)

			res := r.run("-r", dir, "--no-cache", "snapshots")
			noPanic(t, res)
			if res.code != 0 || !strings.Contains(res.stderr, fileShortID(file)) {
				t.Errorf("snapshots: want exit 0 and a warning naming %s:\n%s", fileShortID(file), res)
			}
			target := filepath.Join(t.TempDir(), "target")
			res = r.run("-r", dir, "--no-cache", "restore", "latest", "--target", target)
			noPanic(t, res)
			if res.code != exitFatal {
				t.Errorf("restore: exit %d, want %d:\n%s", res.code, exitFatal, res)
			}
			res = r.run("-r", dir, "--no-cache", "restore", fileShortID(file), "--target", target)
			noPanic(t, res)
			if res.code != exitFatal || !strings.Contains(res.stderr, fileShortID(file)) {
				t.Errorf("restore %s: want exit %d naming the snapshot:\n%s", fileShortID(file), exitFatal, res)
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("restore created its target (%v)", err)
			}
			if diffs := diffState(before, repoState(t, dir)); len(diffs) > 0 {
				t.Errorf("snapshots or restore changed the repository: %v", diffs)
			}

			res = r.run("-r", dir, "--no-cache", "backup", b.src)
			noPanic(t, res)
			if res.code != 0 || !strings.Contains(res.stderr, fileShortID(file)) || !strings.Contains(res.stdout, " saved") {
				t.Errorf("backup: want exit 0, a warning naming %s and a saved snapshot:\n%s", fileShortID(file), res)
			}
			// What backup wrote is sound: without the damaged file
			// restic finds the repository clean.
			if err := os.Remove(filepath.Join(dir, file)); err != nil {
				t.Fatal(err)
			}
			oracleFor(t).MustCheck(dir, true)
		})
	}
}

// TestBadInputDamagedIndex: the only index is damaged. Commands that need
// the index fail naming it (exit 1) before they write anything: no new
// pack, index or snapshot, no restore target. `snapshots` does not read
// the index and still works.
func TestBadInputDamagedIndex(t *testing.T) {
	b := newBadRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	for _, d := range slices.Concat(rawDamages, sealedDamages) {
		t.Run(d.name, func(t *testing.T) {
			dir := b.copyRepo(t)
			file := d.do(t, dir, b.index)
			before := repoState(t, dir)

			r.ok("-r", dir, "--no-cache", "snapshots")
			target := filepath.Join(t.TempDir(), "target")
			for _, args := range [][]string{{"restore", "latest", "--target", target}, {"backup", b.src}, {"ls", "latest"}} {
				res := r.run(append([]string{"-r", dir, "--no-cache"}, args...)...)
				noPanic(t, res)
				if res.code != exitFatal || !strings.Contains(res.stderr, fileShortID(file)) {
					t.Errorf("want exit %d and a message naming the index %s:\n%s", exitFatal, fileShortID(file), res)
				}
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("restore created its target (%v)", err)
			}
			if diffs := diffState(before, repoState(t, dir)); len(diffs) > 0 {
				t.Errorf("the repository changed: %v", diffs)
			}
		})
	}
}
