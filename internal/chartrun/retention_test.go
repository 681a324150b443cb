package chartrun

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/internal/testtools"
)

// packBytes is the size of the pack files (data/) the S3 server stores for
// a repository: what the repository occupies, read from the server's
// directory, not through cairn.
func packBytes(t *testing.T, s3 *testserver.S3, bucket, prefix string) int64 {
	t.Helper()
	var total int64
	for _, size := range packSizes(t, s3, bucket, prefix) {
		total += size
	}
	return total
}

// packSizes is the pack files the S3 server stores for a repository, by
// name, with their sizes.
func packSizes(t *testing.T, s3 *testserver.S3, bucket, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(s3.DataDir, bucket, prefix, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[d.Name()] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// promValue is the value of one series in a pushed body, or -1.
func promValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestRenderedRetentionRunsForReal runs the chart's retention in job mode
// for real against an S3 server: the forget CronJob (forget.prune, a keep
// policy of one snapshot) removes the older snapshot, prunes its data so
// the repository shrinks, restic checks the result clean, and the
// Pushgateway and the webhook get the run's outcome and the cairn_prune_*
// figures. Then the prune CronJob of its own: while a backup holds the
// lock it fails with exit 11 and says so; with prune.retryLock it waits
// for the backup and succeeds.
func TestRenderedRetentionRunsForReal(t *testing.T) {
	if os.Geteuid() != 0 {
		testtools.Unavailable(t, "running pods as their user in a chroot needs root")
	}
	s3 := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	const bucket, prefix = "retention", "cluster-a"
	repo := s3.Repo(bucket, prefix)
	rc := newReceiver(t)
	pvc := t.TempDir()
	big := make([]byte, 3<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pvc, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	values := func(extra string) string { return jobModeValues(repo, s3, rc, "token-456", extra) }
	m := helmTemplate(t, values(`
forget:
  enabled: true
  keep: {keep-last: 1}
  prune: true
  retryLock: 1m
prune:
  maxUnused: "0"
`))
	c := &cluster{cairn: buildCairn(t), claims: map[string]string{"app-data": pvc}}
	mustExit := func(r podRun, code int, what string) {
		t.Helper()
		if r.exitCode != code {
			t.Fatalf("%s exited %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.exitCode, code, r.stdout, r.stderr)
		}
	}
	restic := oracle.New(t).WithPassword(password).WithEnv(
		"AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_DEFAULT_REGION="+s3.Region)
	opt := []string{"-o", "s3.bucket-lookup=path"}

	mustExit(c.run(t, m, m.pod(t, "Job/nightly-cairn-init")), 0, "init")
	mustExit(c.run(t, m, m.pod(t, "CronJob/nightly-cairn-backup-app")), 0, "first backup")
	// The big file goes away: only the first snapshot needs its data.
	if err := os.Remove(filepath.Join(pvc, "big.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pvc, "small.txt"), []byte("small\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExit(c.run(t, m, m.pod(t, "CronJob/nightly-cairn-backup-app")), 0, "second backup")
	snaps := restic.Snapshots(repo, append(opt, "--host", "cluster-a-app")...)
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots before forget, want 2", len(snaps))
	}
	packsBefore := packSizes(t, s3, bucket, prefix)
	sizeBefore := packBytes(t, s3, bucket, prefix)
	rc.mu.Lock()
	rc.webhooks, rc.pushes = nil, map[string]string{}
	rc.mu.Unlock()

	r := c.run(t, m, m.pod(t, "CronJob/nightly-cairn-forget"))
	mustExit(r, 0, "forget with prune")
	left := restic.Snapshots(repo, append(opt, "--host", "cluster-a-app")...)
	if len(left) != 1 || left[0].ID != snaps[1].ID {
		t.Fatalf("after keep-last 1: %d snapshots %v, want only the newer %s", len(left), left, snaps[1].ShortID)
	}
	packsAfter := restic.List(repo, "packs")
	deleted, deletedBytes := 0, int64(0)
	for p, size := range packsBefore {
		if !slices.Contains(packsAfter, p) {
			deleted++
			deletedBytes += size
		}
	}
	sizeAfter := packBytes(t, s3, bucket, prefix)
	if deleted == 0 || sizeBefore-sizeAfter < 3<<20 {
		t.Errorf("prune deleted %d of %d packs, the repository went from %d to %d bytes; want the 3 MiB file's data gone",
			deleted, len(packsBefore), sizeBefore, sizeAfter)
	}
	restic.MustCheck(repo, true, opt...)

	// The run's records name the steps; the figures reach the Pushgateway
	// (the repository's group) and the webhook.
	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line is not a JSON record: %q", line)
		}
		if rec["msg"] == "step finished" {
			steps = append(steps, rec["step"].(string)+"="+rec["status"].(string))
		}
	}
	if !slices.Equal(steps, []string{"forget=success", "prune=success", "stats=success"}) {
		t.Errorf("steps %v, want forget, prune and stats, all successful", steps)
	}
	repoGroup := "POST /metrics/job/cairn/repository@base64/" + base64.RawURLEncoding.EncodeToString([]byte(repo))
	l := `{repository="` + repo + `"}`
	rc.mu.Lock()
	pushed, jobPush, hooks := rc.pushes[repoGroup], rc.pushes["PUT /metrics/job/cairn/run/forget"], rc.webhooks
	rc.webhooks, rc.pushes = nil, map[string]string{}
	rc.mu.Unlock()
	for series, want := range map[string]float64{
		"cairn_prune_success" + l:                1,
		"cairn_prune_packs_deleted" + l:          float64(deleted),
		"cairn_prune_bytes_deleted" + l:          float64(deletedBytes),
		"cairn_backup_repository_size_bytes" + l: float64(sizeAfter),
	} {
		if got := promValue(pushed, series); got != want {
			t.Errorf("pushed %s = %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{"cairn_prune_duration_seconds" + l, "cairn_prune_last_success_timestamp_seconds" + l} {
		if promValue(pushed, series) <= 0 {
			t.Errorf("no %s pushed:\n%s", series, pushed)
		}
	}
	if promValue(jobPush, `cairn_job_success{run="forget"}`) != 1 {
		t.Errorf("job metrics of the forget run:\n%s", jobPush)
	}
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks, want 1: %q", len(hooks), hooks)
	}
	path, body, _ := strings.Cut(hooks[0], " ")
	var hook struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Prune  *struct {
			ExitCode     int   `json:"exit_code"`
			PacksDeleted int   `json:"packs_deleted"`
			BytesDeleted int64 `json:"bytes_deleted"`
		} `json:"prune"`
	}
	if err := json.Unmarshal([]byte(body), &hook); err != nil {
		t.Fatalf("webhook %s: %v", body, err)
	}
	if path != "/hook/token-456" || hook.Name != "forget" || hook.Status != "success" || hook.Prune == nil ||
		hook.Prune.PacksDeleted != deleted || hook.Prune.BytesDeleted != deletedBytes {
		t.Errorf("webhook %s: %s", path, body)
	}
	if strings.Contains(body, password) || strings.Contains(body, s3.SecretKey) || strings.Contains(r.stderr, s3.SecretKey) {
		t.Error("the forget run leaks a secret")
	}

	// The prune CronJob of its own, while a backup holds the (shared) lock:
	// a backup from a pipe that stays open until the test closes it.
	holdLock := func() (release func()) {
		t.Helper()
		cmd := exec.Command(c.cairn, append(opt, "backup", "--stdin", "--stdin-filename", "dump.sql", "--host", "db")...)
		cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+password, "AWS_ACCESS_KEY_ID="+s3.AccessKey,
			"AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_DEFAULT_REGION="+s3.Region, "RESTIC_CACHE_DIR="+t.TempDir())
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); len(restic.List(repo, "locks")) == 0; {
			if time.Now().After(deadline) {
				t.Fatal("the backup took no lock within 20 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, _ = io.WriteString(stdin, "CREATE TABLE t (id int);\n")
		return func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("the lock-holding backup: %v", err)
			}
		}
	}
	release := holdLock()
	noWait := helmTemplate(t, values(`
forget: {enabled: true, keep: {keep-last: 1}}
prune: {enabled: true, maxUnused: "0"}
`))
	r = c.run(t, noWait, noWait.pod(t, "CronJob/nightly-cairn-prune"))
	release()
	mustExit(r, 11, "prune while a backup runs")
	rc.mu.Lock()
	pushed, hooks = rc.pushes[repoGroup], rc.webhooks
	rc.webhooks, rc.pushes = nil, map[string]string{}
	rc.mu.Unlock()
	if promValue(pushed, "cairn_prune_success"+l) != 0 || strings.Contains(pushed, "cairn_prune_last_success_timestamp_seconds") {
		t.Errorf("a locked-out prune pushed:\n%s", pushed)
	}
	if len(hooks) != 1 || !strings.Contains(hooks[0], `"name":"prune"`) || !strings.Contains(hooks[0], `"exit_code":11`) ||
		!strings.Contains(hooks[0], "locked") {
		t.Errorf("webhook of the locked-out prune: %q", hooks)
	}

	// With prune.retryLock the prune waits for the backup and runs. The pod
	// reaches S3 through a proxy that sees its first listing of locks/
	// (the lock attempt the backup's lock defeats); the backup ends a
	// second after that, not after a guessed delay.
	target, err := url.Parse(s3.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	lockTried := make(chan struct{}, 1)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Get("prefix") == prefix+"/locks/" {
			select {
			case lockTried <- struct{}{}:
			default:
			}
		}
		rp.ServeHTTP(w, req)
	}))
	defer proxy.Close()
	proxied := "s3:" + proxy.URL + "/" + bucket + "/" + prefix
	release = holdLock()
	released := make(chan struct{})
	go func() {
		defer close(released)
		defer release()
		select {
		case <-lockTried:
			time.Sleep(time.Second)
		case <-time.After(30 * time.Second):
		}
	}()
	wait := helmTemplate(t, strings.Replace(values(`
forget: {enabled: true, keep: {keep-last: 1}}
prune: {enabled: true, maxUnused: "0", retryLock: 1m}
`), "url: "+repo, "url: "+proxied, 1))
	r = c.run(t, wait, wait.pod(t, "CronJob/nightly-cairn-prune"))
	<-released
	mustExit(r, 0, "prune with retryLock while a backup runs")
	if !strings.Contains(r.stderr, "waiting up to 1m0s for the lock") {
		t.Errorf("the prune did not wait for the lock:\n%s", r.stderr)
	}
	pl := `{repository="` + proxied + `"}`
	rc.mu.Lock()
	pushed = rc.pushes["POST /metrics/job/cairn/repository@base64/"+base64.RawURLEncoding.EncodeToString([]byte(proxied))]
	rc.mu.Unlock()
	if promValue(pushed, "cairn_prune_success"+pl) != 1 || promValue(pushed, "cairn_prune_packs_deleted"+pl) < 0 {
		t.Errorf("the waiting prune pushed:\n%s", pushed)
	}
	restic.MustCheck(repo, false, opt...)
	if n := len(restic.Snapshots(repo, append(opt, "--host", "db")...)); n != 2 {
		t.Errorf("%d snapshots of the lock-holding backups, want 2", n)
	}
}
