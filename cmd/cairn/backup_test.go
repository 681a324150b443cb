package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtree"
)

// backup --stdin stores the same tree as restic's for the same input and
// time, and the content comes back.
func TestBackupStdinLikeRestic(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)
	data := bytes.Repeat([]byte("dump line\n"), 300000) // 3 MB, several chunks
	args := []string{"backup", "--stdin", "--stdin-filename", "db/dump.sql", "--time", "2024-01-02 03:04:05", "--host", "dbhost"}
	mine := backupJSON(t, r.withStdin(bytes.NewReader(data)), args[1:]...)
	theirs := o.RunWith(oracleCmd(dir, bytes.NewReader(data), append([]string{"--json"}, args...)...))
	if theirs.ExitCode != 0 {
		t.Fatalf("restic: %v", theirs.Err())
	}
	var sns []map[string]any
	decode(t, r.ok("snapshots", "--json").stdout, &sns)
	if len(sns) != 2 {
		t.Fatalf("%d snapshots", len(sns))
	}
	if sns[0]["tree"] != sns[1]["tree"] || sns[0]["paths"].([]any)[0] != "/db/dump.sql" {
		t.Errorf("stdin trees differ from restic's or wrong paths:\n%v\n%v", sns[0], sns[1])
	}
	if mine["files_new"] != float64(1) || mine["total_bytes_processed"] != float64(len(data)) {
		t.Errorf("summary %v", mine)
	}
	target := t.TempDir()
	r.ok("restore", mine["snapshot_id"].(string), "--target", target)
	if got, err := os.ReadFile(filepath.Join(target, "db", "dump.sql")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored dump differs (%v)", err)
	}
}

func TestBackupStdinFromCommand(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)

	// The command's arguments reach it untouched (no shell).
	arg := "$HOME; `id` | *"
	summary := backupJSON(t, r, "--stdin-from-command", "--stdin-filename", "out.txt", "--", "printf", "%s", arg)
	target := t.TempDir()
	r.ok("restore", summary["snapshot_id"].(string), "--target", target)
	if got, _ := os.ReadFile(filepath.Join(target, "out.txt")); string(got) != arg {
		t.Errorf("stored %q, want %q", got, arg)
	}

	// A failing command fails the backup: exit 1, no snapshot, its
	// stderr shown.
	res := r.expect(exitFatal, "backup", "--stdin-from-command", "--", "sh", "-c", "echo partial; echo broken pipe >&2; exit 5")
	if !strings.Contains(res.stderr, "exit status 5") || !strings.Contains(res.stderr, "subprocess sh: broken pipe") {
		t.Errorf("%s", res)
	}
	var sns []map[string]any
	decode(t, r.ok("snapshots", "--json").stdout, &sns)
	if len(sns) != 1 {
		t.Errorf("%d snapshots after a failed command, want 1", len(sns))
	}
	if res := r.run("backup", "--stdin-from-command"); res.code != 1 {
		t.Errorf("no command: %s", res)
	}
	if res := r.withStdin(strings.NewReader("x")).run("backup", "--stdin", "/etc"); res.code != 1 || !strings.Contains(res.stderr, "files/dirs were listed") {
		t.Errorf("--stdin with paths: %s", res)
	}
	// Empty input is restic's warning: snapshot saved, exit 3.
	res = r.withStdin(strings.NewReader("")).expect(exitIncomplete, "backup", "--stdin")
	if !strings.Contains(res.stderr, "no data read") {
		t.Errorf("%s", res)
	}
}

// The --json messages of backup have restic's shapes: status lines while
// it runs, and a summary with restic's fields.
func TestBackupJSONMessages(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	big := make([]byte, 6<<20)
	fillRandom(big)
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, src, map[string]string{"small": "s"})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	// Slowed down to about 3 s so that status lines are due.
	start := time.Now()
	res := r.ok("--json", "--limit-upload", "2048", "backup", "--tag", "t1", src)
	elapsed := time.Since(start)
	msgs := jsonLines(t, res.stdout)
	statuses := 0
	for _, m := range msgs[:len(msgs)-1] {
		if m["message_type"] != "status" {
			t.Errorf("unexpected message %v", m)
			continue
		}
		statuses++
		if _, ok := m["percent_done"]; !ok {
			t.Errorf("status without percent_done: %v", m)
		}
	}
	// About one a second: a log collector reading the pipe is not flooded.
	if statuses == 0 || float64(statuses) > elapsed.Seconds()+1 {
		t.Errorf("%d status lines in %v, want about one a second", statuses, elapsed)
	}
	mine := msgs[len(msgs)-1]

	o := oracleFor(t)
	theirsOut := o.RunJSONLines(dir, "backup", src)
	var theirs map[string]any
	if err := json.Unmarshal(theirsOut[len(theirsOut)-1], &theirs); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(keysOf(mine), ","), strings.Join(keysOf(theirs), ","); got != want {
		t.Errorf("summary fields\ncairn:  %s\nrestic: %s", got, want)
	}
	// Text mode in a pipe: no status lines at all, just the summary.
	res = r.ok("backup", src)
	if strings.Contains(res.stdout, "\r") || strings.Contains(res.stdout, "[0:") {
		t.Errorf("status output in a pipe:\n%s", res)
	}
	// Quiet: nothing on stdout.
	if res := r.ok("-q", "backup", src); res.stdout != "" {
		t.Errorf("-q printed:\n%s", res.stdout)
	}
	// Dry run: a summary marked dry_run, nothing stored.
	before := countFiles(t, dir)
	summary := backupJSON(t, r, "--dry-run", t.TempDir())
	if summary["dry_run"] != true || summary["snapshot_id"] != nil {
		t.Errorf("dry-run summary %v", summary)
	}
	if after := countFiles(t, dir); after != before {
		t.Errorf("dry run stored %d files", after-before)
	}
}

// Excludes and target lists give the same snapshot content as restic's
// with the same flags, and the snapshot records the --exclude patterns.
func TestBackupExcludesLikeRestic(t *testing.T) {
	dir := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	testtree.Build(t, src, testtree.Options{SmallFiles: 20})
	excludeFile := writeFile(t, "# comment\n*.log\n")
	list := writeFile(t, src+"/excl\n"+src+"/dirs\n")
	args := []string{"backup", "--host", "h", "--exclude", "excl/logs", "--iexclude", "*.LOG", "--exclude-file", excludeFile,
		"--exclude-if-present", ".nobackup", "--exclude-caches", "--exclude-larger-than", "100k", "--files-from-verbatim", list,
		"--time", "2024-05-06 07:08:09", "--tag", "x,y"}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)
	r.ok(args...)
	o.MustRun(dir, args...)

	var sns []map[string]any
	decode(t, r.ok("snapshots", "--json").stdout, &sns)
	if len(sns) != 2 {
		t.Fatalf("%d snapshots", len(sns))
	}
	for _, key := range []string{"paths", "excludes", "tags", "time"} {
		a, _ := json.Marshal(sns[0][key])
		b, _ := json.Marshal(sns[1][key])
		if string(a) != string(b) {
			t.Errorf("%s: cairn %s, restic %s", key, a, b)
		}
	}
	mine := lsPaths(t, r.ok("ls", "--json", sns[0]["id"].(string)).stdout)
	theirs := lsPaths(t, r.ok("ls", "--json", sns[1]["id"].(string)).stdout)
	if strings.Join(mine, "\n") != strings.Join(theirs, "\n") {
		t.Errorf("contents differ\ncairn:\n%s\nrestic:\n%s", strings.Join(mine, "\n"), strings.Join(theirs, "\n"))
	}
	if len(mine) < 10 {
		t.Errorf("suspiciously few entries: %v", mine)
	}
}

func lsPaths(t *testing.T, out string) []string {
	var paths []string
	for _, m := range jsonLines(t, out) {
		if m["message_type"] == "node" {
			paths = append(paths, m["path"].(string))
		}
	}
	return paths
}

// --parent picks the parent; --force reads everything and records none,
// like restic.
func TestBackupParentAndForce(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a": "1", "b": "2"})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	first := backupJSON(t, r, src)["snapshot_id"].(string)
	backupJSON(t, r, src)

	s := backupJSON(t, r, "--parent", first[:8], src)
	if s["files_unmodified"] != float64(2) {
		t.Errorf("with --parent: %v", s)
	}
	sn := catSnapshot(t, r, s["snapshot_id"].(string))
	if sn["parent"] != first {
		t.Errorf("parent %v, want %s", sn["parent"], first)
	}
	s = backupJSON(t, r, "--force", src)
	if s["files_new"] != float64(2) {
		t.Errorf("with --force: %v", s)
	}
	if sn := catSnapshot(t, r, s["snapshot_id"].(string)); sn["parent"] != nil {
		t.Errorf("--force recorded parent %v", sn["parent"])
	}
	if res := r.run("backup", "--parent", "deadbeef", src); res.code != 1 {
		t.Errorf("unknown parent: %s", res)
	}
	if res := r.run("backup", "--time", "yesterday", src); res.code != 1 || !strings.Contains(res.stderr, "time") {
		t.Errorf("bad --time: %s", res)
	}
	if res := r.run("backup"); res.code != 1 || !strings.Contains(res.stderr, "nothing to backup") {
		t.Errorf("no targets: %s", res)
	}
	if res := r.run("backup", filepath.Join(src, "missing")); res.code != 1 || !strings.Contains(res.stderr, "do not exist") {
		t.Errorf("only missing targets: %s", res)
	}
	// One missing target among others: skipped with a warning, exit 3.
	res := r.expect(exitIncomplete, "backup", src, filepath.Join(src, "missing"))
	if !strings.Contains(res.stderr, "missing") {
		t.Errorf("%s", res)
	}
}

func catSnapshot(t *testing.T, r *runner, id string) map[string]any {
	t.Helper()
	var sn map[string]any
	decode(t, r.ok("cat", "snapshot", id).stdout, &sn)
	return sn
}

// restore's selection and overwrite flags reach the restore.
func TestRestoreFlags(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"keep/a.txt": "a", "keep/b.log": "b", "other/c.txt": "c"})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	r.ok("backup", src)
	spec := "latest:" + src

	exists := func(root, name string) bool {
		_, err := os.Stat(filepath.Join(root, name))
		return err == nil
	}
	inc := t.TempDir()
	r.ok("restore", spec, "--target", inc, "--include", "/keep")
	if !exists(inc, "keep/a.txt") || exists(inc, "other") {
		t.Errorf("--include /keep restored the wrong set")
	}
	exc := t.TempDir()
	r.ok("restore", spec, "--target", exc, "--iexclude", "*.LOG", "--exclude-file", writeFile(t, "/other\n"))
	if !exists(exc, "keep/a.txt") || exists(exc, "keep/b.log") || exists(exc, "other") {
		t.Errorf("--iexclude/--exclude-file restored the wrong set")
	}
	dry := t.TempDir()
	r.ok("restore", spec, "--target", dry, "--dry-run")
	if entries, _ := os.ReadDir(dry); len(entries) != 0 {
		t.Errorf("--dry-run wrote %d entries", len(entries))
	}
	full := t.TempDir()
	writeFiles(t, full, map[string]string{"extra.txt": "not in the snapshot", "keep/a.txt": "local change"})
	r.ok("restore", spec, "--target", full, "--overwrite", "never")
	if got, _ := os.ReadFile(filepath.Join(full, "keep/a.txt")); string(got) != "local change" {
		t.Errorf("--overwrite never replaced a file: %q", got)
	}
	r.ok("restore", spec, "--target", full, "--delete", "--overwrite", "always", "--verify")
	if got, _ := os.ReadFile(filepath.Join(full, "keep/a.txt")); string(got) != "a" || exists(full, "extra.txt") {
		t.Errorf("--delete --overwrite always: a.txt %q, extra.txt kept %v", got, exists(full, "extra.txt"))
	}
	if res := r.run("restore", spec, "--target", t.TempDir(), "--overwrite", "sometimes"); res.code != 1 {
		t.Errorf("bad --overwrite: %s", res)
	}
}

// --with-atime stores access times; by default atime is the mtime, as in
// restic. --files-from expands globs.
func TestBackupAtimeAndFilesFrom(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"one.txt": "1", "two.txt": "2", "skip.bin": "3"})
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	atime := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
	for _, n := range []string{"one.txt", "two.txt", "skip.bin"} {
		if err := os.Chtimes(filepath.Join(src, n), atime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	list := writeFile(t, "# targets\n"+src+"/*.txt\n")
	for _, withAtime := range []bool{false, true} {
		args := []string{"--files-from", list}
		if withAtime {
			args = append(args, "--with-atime")
		}
		id := backupJSON(t, r, args...)["snapshot_id"].(string)
		files := 0
		for _, m := range jsonLines(t, r.ok("ls", "--json", id).stdout) {
			if m["message_type"] != "node" || m["type"] != "file" {
				continue
			}
			files++
			if strings.HasSuffix(m["path"].(string), ".bin") {
				t.Errorf("--files-from glob took %v", m["path"])
			}
			want := mtime
			if withAtime {
				want = atime
			}
			if got, _ := time.Parse(time.RFC3339Nano, m["atime"].(string)); !got.Equal(want) {
				t.Errorf("with-atime=%v: atime %v, want %v", withAtime, m["atime"], want)
			}
		}
		if files != 2 {
			t.Errorf("%d files backed up, want 2", files)
		}
	}
}
