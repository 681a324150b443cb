package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/oracle"
)

// receiver is an HTTP server that records what the job sends: webhook
// bodies and Pushgateway pushes.
type receiver struct {
	mu       sync.Mutex
	webhooks [][]byte
	pushes   map[string]string // "METHOD path" -> body
	fail     int               // answer this many webhooks with 503 first
	srv      *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{pushes: map[string]string{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.fail > 0 && !strings.HasPrefix(r.URL.Path, "/metrics/") {
			rc.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/metrics/") {
			rc.pushes[r.Method+" "+r.URL.Path] = string(body)
		} else {
			rc.webhooks = append(rc.webhooks, body)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) lastWebhook(t *testing.T) jobResult {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.webhooks) == 0 {
		t.Fatal("no webhook received")
	}
	var res jobResult
	if err := json.Unmarshal(rc.webhooks[len(rc.webhooks)-1], &res); err != nil {
		t.Fatalf("webhook body %s: %v", rc.webhooks[len(rc.webhooks)-1], err)
	}
	return res
}

func writeJobFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunJobMode(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir)
	r.ok("init")
	work := t.TempDir()
	db, files := filepath.Join(work, "db"), filepath.Join(work, "files")
	writeJobFile(t, filepath.Join(files, "a.txt"), "a\n")
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	textfile := filepath.Join(work, "cairn.prom")
	post := filepath.Join(work, "post-status")
	config := func(pre string) string {
		p := filepath.Join(t.TempDir(), "job.yaml")
		writeJobFile(t, p, `
sources:
  - name: db
    host: cluster-a-db
    paths: [`+db+`]
    tags: [nightly]
  - name: files
    paths: [`+files+`]
    excludes: ["*.tmp"]
hooks:
  pre:
    - name: dump
      command: [sh, -c, '`+pre+`']
      timeout: 30s
  post:
    - command: [sh, -c, 'echo "$CAIRN_JOB_STATUS $CAIRN_JOB_ERROR" > `+post+`']
webhook:
  url: `+rc.srv.URL+`/hook/secret-token
metrics:
  textfile: `+textfile+`
  pushgateway: `+rc.srv.URL+`
`)
		return p
	}

	// A webhook that answers 503 twice is retried.
	rc.fail = 2
	res := r.ok("run", "--config", config("echo dump > "+db+"/dump.sql"))
	got := rc.lastWebhook(t)
	if got.Status != "success" || got.ExitCode != 0 || len(got.Sources) != 2 {
		t.Fatalf("webhook %+v\n%s", got, res)
	}
	if rc.fail != 0 || len(rc.webhooks) != 1 {
		t.Errorf("webhook: %d refusals left, %d bodies received; want the retries to deliver one", rc.fail, len(rc.webhooks))
	}
	for _, s := range got.Sources {
		if s.Summary == nil || len(s.Summary.SnapshotID) != 64 {
			t.Errorf("source %s: no snapshot in the webhook: %+v", s.Name, s)
		}
	}
	if got.Sources[0].Host != "cluster-a-db" || got.Sources[1].Host != "files" {
		t.Errorf("hosts %q, %q", got.Sources[0].Host, got.Sources[1].Host)
	}
	restic := oracle.New(t).WithPassword(testPassword)
	snaps := restic.Snapshots(repoDir, "--host", "cluster-a-db")
	if len(snaps) != 1 || len(snaps[0].Tags) != 1 || snaps[0].Tags[0] != "nightly" {
		t.Fatalf("restic finds %+v for host cluster-a-db", snaps)
	}
	// The pre-hook ran before the backup: its dump is in the snapshot.
	ls := restic.Ls(repoDir, snaps[0].ID)
	found := false
	for _, n := range ls.Nodes {
		found = found || n.Path == db+"/dump.sql"
	}
	if !found {
		t.Errorf("the pre-hook's dump is not in the snapshot: %+v", ls.Nodes)
	}
	if b, _ := os.ReadFile(post); strings.TrimSpace(string(b)) != "success" {
		t.Errorf("post-hook saw %q, want success", b)
	}
	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`cairn_backup_last_success_timestamp_seconds{source="db",host="cluster-a-db",repository="` + repoDir + `"} `,
		`cairn_backup_files_new{source="files",host="files",repository="` + repoDir + `"} 1`,
		"# TYPE cairn_backup_duration_seconds gauge",
		"cairn_job_success 1",
	} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("textfile lacks %q:\n%s", want, prom)
		}
	}
	rc.mu.Lock()
	if !strings.Contains(rc.pushes["PUT /metrics/job/cairn"], "cairn_job_success 1") ||
		!strings.Contains(rc.pushes["POST /metrics/job/cairn/source/db"], "cairn_backup_last_success_timestamp_seconds") {
		t.Errorf("pushes: %v", rc.pushes)
	}
	rc.mu.Unlock()
	lastSuccess := ""
	for _, line := range strings.Split(string(prom), "\n") {
		if strings.HasPrefix(line, `cairn_backup_last_success_timestamp_seconds{source="db"`) {
			lastSuccess = line
		}
	}

	// A failing pre-hook: no backup, the run fails, everyone is told, and
	// the last success stays in the textfile.
	res = r.run("run", "--config", config("echo dump failed >&2; exit 4"))
	if res.code != 1 {
		t.Fatalf("failing pre-hook: exit %d, want 1\n%s", res.code, res)
	}
	got = rc.lastWebhook(t)
	if got.Status != "failure" || !strings.Contains(got.Error, "pre-hook dump") || len(got.Sources) != 0 {
		t.Errorf("webhook after a failed pre-hook: %+v", got)
	}
	if n := len(restic.Snapshots(repoDir)); n != 2 {
		t.Errorf("%d snapshots after an aborted run, want still 2", n)
	}
	if b, _ := os.ReadFile(post); !strings.HasPrefix(string(b), "failure pre-hook dump") {
		t.Errorf("post-hook saw %q", b)
	}

	// A wrong password: restic's exit code 12, a failure webhook without
	// the password, and the previous last-success timestamp carried over.
	bad := r.with("RESTIC_PASSWORD=wrong-" + testPassword)
	res = bad.run("run", "--config", config("true"))
	if res.code != 12 {
		t.Fatalf("wrong password: exit %d, want 12\n%s", res.code, res)
	}
	got = rc.lastWebhook(t)
	if got.Status != "failure" || got.ExitCode != 12 || got.Sources[0].ExitCode != 12 {
		t.Errorf("webhook after a wrong password: %+v", got)
	}
	rc.mu.Lock()
	for _, body := range rc.webhooks {
		if strings.Contains(string(body), testPassword) {
			t.Error("a webhook body holds the password")
		}
	}
	rc.mu.Unlock()
	prom, _ = os.ReadFile(textfile)
	if !strings.Contains(string(prom), lastSuccess) || !strings.Contains(string(prom), `cairn_backup_success{source="db",host="cluster-a-db",repository="`+repoDir+`"} 0`) {
		t.Errorf("textfile after a failure lacks the carried-over %q or the failure:\n%s", lastSuccess, prom)
	}
	if strings.Contains(res.stdout+res.stderr, "secret-token") {
		t.Error("the webhook URL was printed")
	}
}

func TestRunJobModeBadConfig(t *testing.T) {
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+t.TempDir())
	for _, tc := range []struct{ config, want string }{
		{"sources: []", "no sources"},
		{"sources: [{name: a}]", `source "a" has no paths`},
		{"sources: [{name: a, paths: [/x]}]\nhoks: {}", "hoks"},
		{"sources: [{name: a, paths: [/x]}, {name: a, paths: [/y]}]", "used twice"},
		{"sources: [{name: a, paths: [/x]}]\nhooks: {onPreFailure: ignore}", "onPreFailure"},
		{"name: a/b\ncheck: {}", `name "a/b": no slashes`},
		{"sources: [{name: x/y, paths: [/x]}]", `source name "x/y": no slashes`},
		{"check: {args: [--read-data]}\nchekc: {}", "chekc"},
	} {
		p := filepath.Join(t.TempDir(), "job.yaml")
		writeJobFile(t, p, tc.config)
		res := r.run("run", "--config", p)
		// stderr is JSON records (not a terminal): the error is a message.
		var msgs strings.Builder
		for _, rec := range jsonLines(t, res.stderr) {
			msgs.WriteString(fmt.Sprint(rec["msg"]) + "\n")
		}
		if res.code != 1 || !strings.Contains(msgs.String(), tc.want) {
			t.Errorf("config %q: exit %d, stderr %q; want 1 and %q", tc.config, res.code, res.stderr, tc.want)
		}
	}
}

// SIGTERM (a Job's deadline, a deleted pod) stops the run: the hook is
// stopped, no backup starts, the post-hooks and the webhook still report,
// and the status is 130.
func TestRunJobModeSIGTERM(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir)
	r.ok("init")
	rc := newReceiver(t)
	work := t.TempDir()
	started, post := filepath.Join(work, "started"), filepath.Join(work, "post")
	cfg := filepath.Join(work, "job.yaml")
	writeJobFile(t, cfg, `
sources: [{name: a, paths: [`+work+`]}]
hooks:
  pre: [{name: slow, command: [sh, -c, 'touch `+started+`; exec sleep 60']}]
  post: [{command: [sh, -c, 'echo "$CAIRN_JOB_STATUS" > `+post+`']}]
webhook: {url: `+rc.srv.URL+`}
`)
	cmd := r.command(t.Context(), "run", "--config", cfg)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pre-hook never started\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("after SIGTERM: %v, want exit 130\n%s", err, out.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the run took %v to stop", d)
	}
	if got := rc.lastWebhook(t); got.Status != "failure" || got.ExitCode != 130 {
		t.Errorf("webhook after SIGTERM: %+v", got)
	}
	if b, _ := os.ReadFile(post); strings.TrimSpace(string(b)) != "failure" {
		t.Errorf("post-hook saw %q, want failure", b)
	}
	if n := len(oracle.New(t).WithPassword(testPassword).Snapshots(repoDir)); n != 0 {
		t.Errorf("%d snapshots after an interrupted pre-hook", n)
	}
}

// With onPreFailure: continue a failed pre-hook does not stop the backup,
// but the run still fails and says why.
func TestRunJobModePreHookContinue(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir)
	r.ok("init")
	work := t.TempDir()
	writeJobFile(t, filepath.Join(work, "data", "a.txt"), "a\n")
	rc := newReceiver(t)
	cfg := filepath.Join(work, "job.yaml")
	writeJobFile(t, cfg, `
sources: [{name: a, paths: [`+filepath.Join(work, "data")+`]}]
hooks:
  pre: [{name: flaky, command: [sh, -c, 'exit 2']}]
  onPreFailure: continue
webhook: {url: `+rc.srv.URL+`}
`)
	res := r.run("run", "--config", cfg)
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, res)
	}
	if n := len(oracle.New(t).WithPassword(testPassword).Snapshots(repoDir)); n != 1 {
		t.Errorf("%d snapshots, want the backup to run despite the pre-hook", n)
	}
	if got := rc.lastWebhook(t); got.Status != "failure" || !strings.Contains(got.Error, "pre-hook flaky") || len(got.Sources) != 1 || got.Sources[0].ExitCode != 0 {
		t.Errorf("webhook %+v", got)
	}
}

// SIGTERM in the middle of a backup: the backup child gets SIGTERM too,
// releases its lock and leaves a repository restic checks clean; the run
// exits 130 and the webhook reports it.
func TestRunJobModeSIGTERMDuringBackup(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	big := make([]byte, 24<<20) // about 12 s at 2 MiB/s
	fillRandom(big)
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, `
sources: [{name: big, paths: [`+src+`], args: [--limit-upload, "2048", --pack-size, "4"]}]
webhook: {url: `+rc.srv.URL+`}
`)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	cmd := r.command(t.Context(), "run", "--config", cfg)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(lockIDs(t, dir)) == 0 || countFiles(t, filepath.Join(dir, "data")) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("backup stored no pack within a minute\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d after SIGTERM, want 130\n%s", code, out.String())
	}
	if n := len(lockFiles(t, dir)); n != 0 {
		t.Errorf("%d locks left after SIGTERM", n)
	}
	restic := oracle.New(t).WithPassword(testPassword)
	restic.MustCheck(dir, false)
	if n := len(restic.Snapshots(dir)); n != 0 {
		t.Errorf("%d snapshots after an interrupted backup", n)
	}
	got := rc.lastWebhook(t)
	if got.Status != "failure" || got.ExitCode != 130 || len(got.Sources) != 1 || got.Sources[0].ExitCode != 130 {
		t.Errorf("webhook after SIGTERM: %+v", got)
	}
}

// A job with a backup, a prune step and metrics opens the repository once
// per process: the backup and prune children once each, and the job
// itself once for the prune step's pack listings and the metrics'
// figures together (before, it opened it for each, deriving the key
// twice). The password command runs once per process as well.
func TestRunJobOpensRepositoryOncePerProcess(t *testing.T) {
	t.Parallel()
	loc, _, keyReads := openCountingRepo(t, 2)
	pwEnv, pwRuns := countingPasswordCommand(t)
	r := newRunner(t).with("RESTIC_REPOSITORY="+loc, pwEnv)
	src := t.TempDir()
	writeJobFile(t, filepath.Join(src, "a.txt"), "a\n")
	textfile := filepath.Join(t.TempDir(), "cairn.prom")
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, `
sources: [{name: s, host: h, paths: [`+src+`]}]
prune: {}
metrics: {textfile: `+textfile+`}
`)
	res := r.ok("run", "--config", cfg)
	const processes = 3 // the job, `backup`, `prune`
	if n := keyReads(); n != processes {
		t.Errorf("the job read a key file %d times, want %d (one open per process)\n%s", n, processes, res.stderr)
	}
	if n := pwRuns(); n != processes {
		t.Errorf("the password command ran %d times, want %d (once per process)", n, processes)
	}
	// Both users of the shared handle did their work.
	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prom), "cairn_backup_repository_size_bytes{") {
		t.Errorf("no repository size in the metrics:\n%s", prom)
	}
	pruned := false
	for _, rec := range jsonLines(t, res.stderr) {
		if rec["msg"] == "step finished" && rec["step"] == "prune" {
			_, pruned = rec["packs_deleted"]
		}
	}
	if !pruned {
		t.Errorf("the prune step has no packs_deleted figure:\n%s", res.stderr)
	}
}
