package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Crash safety: every command is SIGKILLed at each of its requests to
// rest-server (before it is forwarded, with half an upload sent, after the
// server answered), before each of its reads, and at timer points in
// between. After every kill restic check accepts the repository, the same
// command succeeds when run again without an unlock, and restic accepts the
// result. The harness is in crashharness_test.go; the behaviour is
// documented in docs/maintenance.md ("crash safety").

// crashMinPoints is how many kills each command's series must reach.
const crashMinPoints = 50

// crashLocalPoints is the same for the extra series on a local repository,
// which has timer points only.
const crashLocalPoints = 20

// crashSource writes a tree for backups: three files of a few MiB (so that
// a backup with --pack-size 4 uploads several data packs) and small files
// in nested directories (several tree blobs).
func crashSource(t *testing.T, dir string, seed int) {
	t.Helper()
	files := map[string]string{}
	for i := range 3 {
		big := make([]byte, 2<<20+i*100_000)
		fillRandom(big)
		files[fmt.Sprintf("big-%d-%d", seed, i)] = string(big)
	}
	for i := range 12 {
		files[fmt.Sprintf("d%d/sub%d/small-%d-%d.txt", i%3, i%2, seed, i)] = fmt.Sprintf("small file %d of round %d\n", i, seed)
	}
	writeFiles(t, dir, files)
}

// restoresTo returns a verify function: restic restores the latest
// snapshot byte-identical to src.
func restoresTo(src string) func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
	return func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
		t.Helper()
		target := t.TempDir()
		o.MustRun(pt.dir, "--no-lock", "restore", "latest", "--target", target)
		sameFiles(t, "restic", src, target)
	}
}

func TestCrashBackup(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	proxy := newCrashProxy(t, srv)

	t.Run("initial", func(t *testing.T) {
		src := t.TempDir()
		crashSource(t, src, 1)
		s := &crashSeries{
			name: "backup-initial", srv: srv, proxy: proxy, base: newRepo(t),
			args:      []string{"backup", "--pack-size", "4", src},
			verify:    restoresTo(src),
			minPoints: crashMinPoints,
		}
		s.sweep(t)
	})

	// The local backend: killed at timer points only (nothing to count),
	// while it writes packs under temporary names and renames them.
	t.Run("local", func(t *testing.T) {
		src := t.TempDir()
		crashSource(t, src, 1)
		s := &crashSeries{
			name: "backup-local", local: true, base: newRepo(t),
			args:      []string{"backup", "--pack-size", "4", src},
			verify:    restoresTo(src),
			minPoints: crashLocalPoints,
		}
		s.sweep(t)
	})

	t.Run("incremental", func(t *testing.T) {
		src := t.TempDir()
		crashSource(t, src, 1)
		base := newRepo(t)
		newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+base).ok("backup", src)
		// New and changed files on top of the first snapshot: the
		// incremental run uploads only these, with the first as parent.
		crashSource(t, src, 2)
		if err := os.WriteFile(filepath.Join(src, "d0", "sub0", "small-1-0.txt"), []byte("changed\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &crashSeries{
			name: "backup-incremental", srv: srv, proxy: proxy, base: base,
			args:      []string{"backup", "--pack-size", "4", src},
			verify:    restoresTo(src),
			minPoints: crashMinPoints,
		}
		s.sweep(t)
	})
}

// manySnapshots backs src up into dir once and saves n-1 more snapshots of
// the same tree, an hour apart, through the library (much faster than n
// backups). Commands that rewrite or remove snapshots get many mutations
// from them.
func manySnapshots(t *testing.T, dir, src string, n int) {
	t.Helper()
	newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir).ok("backup", src)
	r := openRepo(t, dir)
	ctx := t.Context()
	list, err := r.Snapshots(ctx, nil)
	if err != nil || len(list) != 1 {
		t.Fatalf("snapshots: %d, %v", len(list), err)
	}
	for i := 1; i < n; i++ {
		sn := *list[0]
		sn.Time = sn.Time.Add(-time.Duration(i) * time.Hour)
		sn.Summary = nil
		if _, err := r.SaveSnapshot(ctx, &sn); err != nil {
			t.Fatal(err)
		}
	}
}

// backupRounds backs up n different small trees into dir and returns their
// directories in the order of their snapshots' times. All share four
// files; each has four of its own. The first round runs alone, so the
// shared files are stored in its packs only, mixed with its own (every file
// is one blob, and blobs go to one of two packs at random): when the round
// is forgotten, prune must repack them. The others run four at a time.
func backupRounds(t *testing.T, dir string, n int) []string {
	t.Helper()
	shared := map[string]string{}
	for i := range 4 {
		b := make([]byte, 60_000)
		fillRandom(b)
		shared[fmt.Sprintf("shared-%d.bin", i)] = string(b)
	}
	srcs := make([]string, n)
	for i := range srcs {
		srcs[i] = t.TempDir()
		files := maps.Clone(shared)
		for j := range 4 {
			b := make([]byte, 50_000)
			fillRandom(b)
			files[fmt.Sprintf("own-%d.bin", j)] = string(b)
		}
		files["d/small.txt"] = fmt.Sprintf("round %d\n", i)
		files["d/e/more.txt"] = fmt.Sprintf("more %d\n", i)
		writeFiles(t, srcs[i], files)
	}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	results := make([]result, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range srcs {
		if i == 1 {
			wg.Wait()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// Times an hour apart keep the order forget and "latest" see
			// independent of which backup finished first.
			results[i] = r.run("backup", "--time", time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC).Format("2006-01-02 15:04:05"), srcs[i])
		}()
	}
	wg.Wait()
	for _, res := range results {
		if res.code != 0 {
			t.Fatalf("%s", res)
		}
	}
	return srcs
}

// snapshotCount is a verify function: restic lists n snapshots.
func snapshotCount(n int) func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
	return func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
		t.Helper()
		if got := o.Snapshots(pt.dir, "--no-lock"); len(got) != n {
			t.Errorf("restic lists %d snapshots, want %d", len(got), n)
		}
	}
}

func TestCrashForget(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a": "a", "d/b": "b"})
	base := newRepo(t)
	manySnapshots(t, base, src, 30)
	all := oracleFor(t).Snapshots(base) // oldest first
	var newest []string
	for _, sn := range all[len(all)-3:] {
		newest = append(newest, sn.ID)
	}
	s := &crashSeries{
		name: "forget", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		// 27 snapshot files deleted one by one.
		args: []string{"forget", "--keep-last", "3"},
		verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
			var kept []string
			for _, sn := range o.Snapshots(pt.dir, "--no-lock") {
				kept = append(kept, sn.ID)
			}
			if !slices.Equal(kept, newest) {
				t.Errorf("restic lists %v, want the newest three %v", kept, newest)
			}
		},
		minPoints: crashMinPoints,
	}
	s.sweep(t)
}

func TestCrashTag(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a": "a", "d/b": "b"})
	base := newRepo(t)
	const n = 12
	manySnapshots(t, base, src, n)
	before := oracleFor(t).Snapshots(base)
	s := &crashSeries{
		name: "tag", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		// Each snapshot is saved anew with the tag, then the old one goes.
		args: []string{"tag", "--add", "crashed"},
		verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
			// A kill between saving a tagged copy and deleting the
			// original leaves both; the second run tags the original
			// again, which makes a second tagged copy (a new file: the
			// encryption differs). restic's tag does the same. So one
			// snapshot may be there twice, but every original is there,
			// tagged, and no untagged one is left.
			list := o.Snapshots(pt.dir, "--no-lock")
			if len(list) != n && len(list) != n+1 {
				t.Errorf("restic lists %d snapshots, want %d (or one more)", len(list), n)
			}
			originals := map[string]bool{}
			for _, sn := range list {
				if !slices.Contains(sn.Tags, "crashed") || sn.Original == "" {
					t.Errorf("snapshot %s: tags %v, original %q", sn.ShortID, sn.Tags, sn.Original)
				}
				originals[sn.Original] = true
			}
			for _, sn := range before {
				if !originals[sn.ID] {
					t.Errorf("snapshot %s was lost", sn.ShortID)
				}
			}
		},
		minPoints: crashMinPoints,
	}
	s.sweep(t)
}

// The base of the prune, repair and check series: 12 rounds of backups,
// the first 8 forgotten, so that prune deletes whole packs, repacks packs
// that are partly used (the shared file) and replaces 12 index files.
func pruneBase(t *testing.T) (base string, kept []string) {
	t.Helper()
	base = newRepo(t)
	srcs := backupRounds(t, base, 12)
	newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+base).
		ok("forget", "--group-by", "", "--keep-last", "4")
	return base, srcs[8:]
}

// duplicatePacks are restic check's notices for packs listed in more than
// one index file.
var duplicatePacks = regexp.MustCompile(`(?i)contained in several indexes|duplicate packs are non-critical|^\s*$`)

func TestCrashPrune(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	base, kept := pruneBase(t)
	s := &crashSeries{
		name: "prune", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		args: []string{"prune", "--max-unused", "0"},
		verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
			// The second prune finished the job: nothing unreferenced is
			// left, not even the killed run's half-done repack. Packs in
			// two index files may stay (killed while deleting old index
			// files, and the second run had no pack to drop from the
			// index, so it did not rewrite it: restic 0.19's prune
			// decides the same way).
			resticAccepts(t, o, pt.dir, duplicatePacks, "after the second prune", false, "--no-lock")
			snapshotCount(4)(t, o, pt)
			restoresTo(kept[len(kept)-1])(t, o, pt)
		},
		minPoints: crashMinPoints,
	}
	s.sweep(t)
}

// forget --prune as a CronJob runs it: snapshots removed one by one, then
// prune in the same process. A kill after the snapshots are gone leaves a
// rerun with nothing to forget, which (like restic's) then does not prune:
// what the killed prune left behind is tolerated by restic check and
// removed by the next prune.
func TestCrashForgetPrune(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	base := newRepo(t)
	srcs := backupRounds(t, base, 12)
	s := &crashSeries{
		name: "forget --prune", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		args: []string{"forget", "--group-by", "", "--keep-last", "4", "--prune", "--max-unused", "0"},
		verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
			snapshotCount(4)(t, o, pt)
			restoresTo(srcs[len(srcs)-1])(t, o, pt)
		},
		minPoints: crashMinPoints,
	}
	s.sweep(t)
}

func TestCrashRepairIndex(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	base, kept := pruneBase(t)
	s := &crashSeries{
		name: "repair-index", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		args:      []string{"repair", "index"},
		verify:    restoresTo(kept[len(kept)-1]),
		minPoints: crashMinPoints,
	}
	s.sweep(t)
}

// check changes nothing but its lock; a kill anywhere is harmless.
func TestCrashCheck(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	base, _ := pruneBase(t)
	s := &crashSeries{
		name: "check", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		args:      []string{"check"},
		minPoints: crashMinPoints,
	}
	s.sweep(t)
}

func TestCrashCopy(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	from := newRepo(t)
	srcs := backupRounds(t, from, 8)
	s := &crashSeries{
		name: "copy", srv: srv, proxy: newCrashProxy(t, srv), base: newRepo(t),
		// The source is read directly; the proxy sees the destination.
		args: []string{"copy", "--from-repo", from},
		verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
			snapshotCount(8)(t, o, pt)
			restoresTo(srcs[len(srcs)-1])(t, o, pt)
		},
		minPoints: crashMinPoints,
	}
	s.env = []string{"RESTIC_FROM_PASSWORD=" + testPassword}
	s.sweep(t)
}

func TestCrashKey(t *testing.T) {
	crashTmpfs(t)
	bin, err := cheapKDFBin()
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.RestServer(t, testserver.RestOptions{})
	proxy := newCrashProxy(t, srv)
	const newPassword = "new password after the crash"
	pwFile := filepath.Join(t.TempDir(), "new-password")
	if err := os.WriteFile(pwFile, []byte(newPassword), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("add", func(t *testing.T) {
		s := &crashSeries{
			name: "key-add", srv: srv, proxy: proxy, base: newRepo(t), bin: bin,
			args: []string{"key", "add", "--new-password-file", pwFile},
			verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
				if keys := o.KeyList(pt.dir); len(keys) < 2 {
					t.Errorf("%d keys, want the old one and at least one new", len(keys))
				}
				o.WithPassword(newPassword).MustRun(pt.dir, "--no-lock", "cat", "config")
			},
			minPoints: crashMinPoints,
		}
		s.sweep(t)
	})

	t.Run("passwd", func(t *testing.T) {
		s := &crashSeries{
			name: "key-passwd", srv: srv, proxy: proxy, base: newRepo(t), bin: bin,
			args: []string{"key", "passwd", "--new-password-file", pwFile},
			// Never locked out: the old or the new password opens the
			// repository wherever the change was killed.
			passwords: []string{testPassword, newPassword},
			// A kill after the old key was removed leaves only the new
			// password working: the command is done, and run again with
			// the new password it changes the password to itself.
			again: func(t *testing.T, s *crashSeries, r *runner, pt *pointRepo) string {
				res := s.run(t, r, s.args...)
				if res.code == exitWrongPassword {
					res = s.run(t, r.with("RESTIC_PASSWORD="+newPassword), s.args...)
				}
				if res.code != 0 {
					t.Fatalf("second run: %s", res)
				}
				return newPassword
			},
			verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
				if res := o.WithPassword(testPassword).Run(pt.dir, "--no-lock", "cat", "config"); res.ExitCode != exitWrongPassword {
					t.Errorf("the old password still opens the repository (restic exit %d)", res.ExitCode)
				}
			},
			minPoints: crashMinPoints,
		}
		s.sweep(t)
	})
}

// repair snapshots on a repository that lost a pack: the newest snapshot
// references blobs that are gone. The base is damaged on purpose, so after
// a kill restic check is not asked to pass (it fails on the damage); it
// must open the repository and list every snapshot, and after the second
// run it must find no error at all.
func TestCrashRepairSnapshots(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	base, kept := pruneBase(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+base)
	r.ok("prune")
	// Lose the pack holding a file only the newest snapshot has, then
	// let repair index forget it: the snapshot now points at nothing.
	own, err := os.ReadFile(filepath.Join(kept[len(kept)-1], "own-0.bin"))
	if err != nil {
		t.Fatal(err)
	}
	lib := openRepo(t, base)
	if err := lib.LoadIndex(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	locs := lib.Index().Lookup(blob.Handle{ID: blob.Hash(own), Type: blob.DataBlob})
	if len(locs) != 1 {
		t.Fatalf("own-0.bin is stored %d times", len(locs))
	}
	pack := locs[0].Pack.String()
	if err := os.Remove(filepath.Join(base, "data", pack[:2], pack)); err != nil {
		t.Fatal(err)
	}
	r.ok("repair", "index")
	if oracleFor(t).Check(base, false).ExitCode == 0 {
		t.Fatal("restic check accepts the damaged base repository")
	}

	s := &crashSeries{
		name: "repair-snapshots", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		args:        []string{"repair", "snapshots", "--forget"},
		damagedBase: true,
		// A kill between saving the repaired snapshot and deleting the
		// damaged one leaves both; the second run repairs that one again:
		// two repaired copies (restic's repair does the same).
		verify: func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
			if n := len(o.Snapshots(pt.dir, "--no-lock")); n != 4 && n != 5 {
				t.Errorf("restic lists %d snapshots, want 4 (or 5)", n)
			}
		},
		minPoints: crashMinPoints,
	}
	s.sweep(t)
}

// A lock whose holder is gone does not block: the next command removes it
// and says so, where restic 0.19 stops with exit 11 until `unlock`. cairn
// knows a holder is gone when the lock names cairn's PID namespace and the
// PID is free in it; a lock that does not (restic's) may belong to a live
// process in a container that shares the host name, so it blocks like in
// restic until unlock or 30 minutes pass. A lock from another host is gone
// after 30 minutes without a refresh (a CronJob pod that was killed: the
// next pod has another host name); a fresh one from another host still
// blocks.
func TestCrashStaleLocks(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "x"})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	lib := openRepo(t, dir)
	save := func(l repo.Lock) {
		t.Helper()
		buf, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lib.SaveUnpacked(t.Context(), backend.LockFile, buf); err != nil {
			t.Fatal(err)
		}
	}
	o := oracleFor(t)

	// A cairn backup SIGKILLed while it holds its lock (it waits for
	// stdin). restic's check is blocked by it (restic never ignores a
	// lock); the next cairn command removes it.
	stdin, feed := io.Pipe()
	killed := r.withStdin(stdin).command(t.Context(), "backup", "--stdin")
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	// Its lock under its final name: a temporary file caught before the
	// rename is no lock yet.
	for deadline := time.Now().Add(time.Minute); len(lockIDs(t, dir)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("cairn backup --stdin took no lock within a minute")
		}
	}
	_ = killed.Process.Kill()
	_ = feed.Close() // Wait waits for the stdin copy too
	_ = killed.Wait()
	if code := o.Run(dir, "check").ExitCode; code != exitLocked {
		t.Errorf("restic check with a killed cairn's lock: exit %d, want %d", code, exitLocked)
	}
	res := r.ok("backup", src)
	if !strings.Contains(res.stderr, "removed stale shared lock") || !strings.Contains(res.stderr, fmt.Sprintf("PID %d", killed.Process.Pid)) {
		t.Errorf("no notice of the removed lock:\n%s", res)
	}
	if locks := lockFiles(t, dir); len(locks) != 0 {
		t.Errorf("locks left: %v", locks)
	}

	// restic's lock (no PID namespace) of a process gone from this host:
	// both tools stop until unlock, and both unlocks remove it.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	resticLock := repo.Lock{Time: time.Now(), Exclusive: true, Hostname: host, Username: "ghost", PID: dead.Process.Pid}
	save(resticLock)
	if code := o.Run(dir, "backup", src).ExitCode; code != exitLocked {
		t.Errorf("restic backup with a dead process's exclusive lock: exit %d, want %d", code, exitLocked)
	}
	if res := r.expect(exitLocked, "backup", src); !strings.Contains(res.stderr, fmt.Sprintf("PID %d", dead.Process.Pid)) {
		t.Errorf("the message does not name the holder:\n%s", res)
	}
	if res := o.MustRun(dir, "unlock"); !strings.Contains(string(res.Stdout), "successfully removed 1 locks") {
		t.Errorf("restic unlock: %s", res.Output())
	}
	save(resticLock)
	r.ok("unlock")
	if locks := lockFiles(t, dir); len(locks) != 0 {
		t.Errorf("cairn unlock left %v", locks)
	}

	// cairn's lock from a container with this host name but another PID
	// namespace: its PID says nothing here, not even to unlock.
	save(repo.Lock{Time: time.Now(), Exclusive: true, Hostname: host, Username: "ghost", PID: dead.Process.Pid, PIDNamespace: "0d9e2c44-1b7f-4f0e-9a53-6a1c3c1d7e55/pid:[4026532417]"})
	r.expect(exitLocked, "backup", src)
	r.ok("unlock")
	if locks := lockFiles(t, dir); len(locks) != 1 {
		t.Errorf("unlock removed a lock from another PID namespace: %v", locks)
	}
	r.ok("unlock", "--remove-all")

	// Killed on another host 31 minutes ago.
	save(repo.Lock{Time: time.Now().Add(-31 * time.Minute), Hostname: "killed-pod", Username: "ghost", PID: 1})
	res = r.ok("forget", "--keep-last", "1")
	if !strings.Contains(res.stderr, "removed stale shared lock") || !strings.Contains(res.stderr, "killed-pod") {
		t.Errorf("no notice of the removed lock:\n%s", res)
	}

	// Another host, refreshed a minute ago: it may well be running.
	save(repo.Lock{Time: time.Now().Add(-time.Minute), Hostname: "running-pod", Username: "ghost", PID: 1})
	res = r.expect(exitLocked, "forget", "--keep-last", "1")
	if !strings.Contains(res.stderr, "running-pod") {
		t.Errorf("the message does not name the holder:\n%s", res)
	}
	r.ok("backup", src) // a shared lock does not conflict
	if locks := lockFiles(t, dir); len(locks) != 1 {
		t.Errorf("locks: %v, want only running-pod's", locks)
	}
}

// migrate upgrade_repo_v2 rewrites the one file that is ever replaced, the
// config. rest-server cannot replace a file, so cairn (like restic) deletes
// the old config and then stores the new one, after saving a copy in
// $TMPDIR/cairn-migrate-upgrade-repo-v2-*/config. Killed between the two,
// the repository has no usable config (none, or a truncated one: rest-server
// writes the config in place) and is no repository to restic or cairn until
// that copy is put back: the test checks that exactly those points lose the
// config and that the copy restores it. A local repository replaces the
// config atomically: no such window.
func TestCrashMigrate(t *testing.T) {
	crashTmpfs(t)
	srv := testserver.RestServer(t, testserver.RestOptions{})
	base := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := repo.Init(t.Context(), be, testPassword, repo.InitOptions{Version: 1, Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v1.Close()
	src := t.TempDir()
	crashSource(t, src, 1)
	newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+base).ok("backup", src)

	isV2 := func(t *testing.T, o *oracle.Restic, pt *pointRepo) {
		t.Helper()
		if v := o.CatConfig(pt.dir).Version; v != 2 {
			t.Errorf("config version %d after the second run, want 2", v)
		}
		restoresTo(src)(t, o, pt)
	}
	var mu sync.Mutex
	var lost []string
	s := &crashSeries{
		name: "migrate", srv: srv, proxy: newCrashProxy(t, srv), base: base,
		args:   []string{"migrate", "upgrade_repo_v2"},
		verify: isV2,
		afterKill: func(t *testing.T, r *runner, pt *pointRepo, p crashPoint) {
			res := r.run("cat", "config")
			if res.code == 0 {
				return
			}
			mu.Lock()
			lost = append(lost, p.String())
			mu.Unlock()
			t.Logf("%v: the kill left no usable config (exit %d): %s", p, res.code, strings.TrimSpace(res.stderr))
			var tmp string
			for _, e := range r.env {
				if v, ok := strings.CutPrefix(e, "TMPDIR="); ok {
					tmp = v
				}
			}
			backups, _ := filepath.Glob(filepath.Join(tmp, "cairn-migrate-upgrade-repo-v2-*", "config"))
			if len(backups) != 1 {
				t.Fatalf("%v: the config is gone and there are %d backups of it: %v", p, len(backups), backups)
			}
			raw, err := os.ReadFile(backups[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pt.dir, "config"), raw, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		minPoints: crashMinPoints,
	}
	s.sweep(t)
	// The window is between the delete of the old config (mutation 2,
	// after the lock) and the upload of the new one (3): killed after the
	// delete, before the upload, or in it — rest-server writes the config
	// in place, so a cut upload leaves it truncated. A timer may hit the
	// window too; no other point may.
	slices.Sort(lost)
	t.Logf("points that left no usable config: %v", lost)
	window := []string{"mut02-after", "mut03-before", "mut03-mid"}
	for _, p := range lost {
		if !slices.Contains(window, p) && !strings.HasPrefix(p, "timer-") {
			t.Errorf("the kill at %s left no usable config", p)
		}
	}
	for _, p := range window {
		if !testing.Short() && !slices.Contains(lost, p) {
			t.Errorf("the kill at %s left a usable config; the window is not where it is documented (%v)", p, lost)
		}
	}

	t.Run("local", func(t *testing.T) {
		s := &crashSeries{
			name: "migrate-local", local: true, base: base,
			args:      []string{"migrate", "upgrade_repo_v2"},
			verify:    isV2,
			minPoints: crashLocalPoints,
		}
		s.sweep(t)
	})
}
