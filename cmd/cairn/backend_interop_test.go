package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/testserver"
)

// remoteRepo is one repository on a real server, named for cairn and for
// restic (which may reach it differently: an SFTP repository is checked by
// restic as the directory it is), with the environment each needs.
type remoteRepo struct {
	cairnLoc, resticLoc string
	cairnArgs           []string // -o options for cairn
	env                 []string // for both (S3 credentials)
}

// sameFiles fails the test unless every regular file below src has the
// same content below restored (which holds src's absolute path, as both
// tools restore it).
func sameFiles(t *testing.T, who, src, restored string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join(restored, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s restored %s differently (err %v)", who, p, err)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("compare %s: %d files, %v", src, n, err)
	}
}

// interopSource writes a small tree with one file large enough for
// several chunks.
func interopSource(t *testing.T, seed byte) string {
	t.Helper()
	src := t.TempDir()
	big := make([]byte, 3<<20)
	fillRandom(big)
	big[0] = seed
	writeFiles(t, src, map[string]string{
		"small.txt":     fmt.Sprintf("seed %d\n", seed),
		"dir/empty":     "",
		"dir/sub/x.txt": "nested\n",
	})
	if err := os.WriteFile(filepath.Join(src, "dir", "big.bin"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	return src
}

// The end-to-end compatibility test on every remote backend: restic writes
// a repository, cairn reads it (snapshots, restore byte for byte) and backs
// up into it; restic then checks the result with --read-data and restores
// cairn's snapshot byte for byte.
func TestBackendInteropWithRestic(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) remoteRepo{
		"rest": func(t *testing.T) remoteRepo {
			srv := testserver.RestServer(t, testserver.RestOptions{Users: map[string]string{"alice": "pw-interop"}})
			loc := srv.Repo("alice", "pw-interop", "interop")
			return remoteRepo{cairnLoc: loc, resticLoc: loc}
		},
		"sftp": func(t *testing.T) remoteRepo {
			srv := sshtest.Start(t)
			dir := filepath.Join(t.TempDir(), "sftp-repo")
			return remoteRepo{
				cairnLoc:  fmt.Sprintf("sftp://%s@%s:%d/%s", srv.User, srv.Host, srv.Port, dir),
				resticLoc: dir,
				cairnArgs: []string{"-o", "sftp.key=" + srv.UserKey.Path, "-o", "sftp.known-hosts=" + srv.KnownHosts},
			}
		},
	}
	for _, kind := range testserver.S3Kinds {
		backends["s3-"+string(kind)] = func(t *testing.T) remoteRepo {
			srv := testserver.S3Server(t, kind, testserver.S3Options{})
			loc := srv.Repo("interop", "repo")
			return remoteRepo{cairnLoc: loc, resticLoc: loc, env: []string{
				"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_DEFAULT_REGION=" + srv.Region}}
		}
	}
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			rr := mk(t)
			o := oracleFor(t).WithEnv(rr.env...)
			r := newRunner(t).with(append([]string{"RESTIC_PASSWORD=" + testPassword, "RESTIC_REPOSITORY=" + rr.cairnLoc}, rr.env...)...)
			cairn := func(args ...string) result { t.Helper(); return r.ok(append(rr.cairnArgs, args...)...) }

			// restic writes, cairn reads.
			resticSrc := interopSource(t, 1)
			o.Init(rr.resticLoc, 2)
			o.Backup(rr.resticLoc, []string{resticSrc}, "--host", "restic-host")
			var sns []map[string]any
			decode(t, cairn("snapshots", "--json").stdout, &sns)
			if len(sns) != 1 || sns[0]["hostname"] != "restic-host" {
				t.Fatalf("cairn lists restic's snapshots as %v", sns)
			}
			target := t.TempDir()
			cairn("restore", "latest", "--target", target)
			sameFiles(t, "cairn", resticSrc, target)

			// cairn writes into restic's repository, restic reads.
			cairnSrc := interopSource(t, 2)
			cairn("backup", "--host", "cairn-host", cairnSrc)
			o.MustCheck(rr.resticLoc, true)
			target = t.TempDir()
			o.Restore(rr.resticLoc, "latest", target, "--host", "cairn-host")
			sameFiles(t, "restic", cairnSrc, target)
		})
	}
}
