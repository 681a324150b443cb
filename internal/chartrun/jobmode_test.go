package chartrun

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/internal/testtools"
)

// receiver records webhooks and Pushgateway pushes.
type receiver struct {
	mu       sync.Mutex
	webhooks []string
	pushes   map[string]string // "METHOD path" -> body
	srv      *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{pushes: map[string]string{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/metrics/") {
			rc.pushes[r.Method+" "+r.URL.Path] = string(body)
			return
		}
		rc.webhooks = append(rc.webhooks, r.URL.Path+" "+string(body))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// TestRenderedJobModeRunsForReal runs the backup pod of the chart's job
// mode: the webhook (URL from the Secret) gets the outcome, the Pushgateway
// the documented metrics; with an unreachable backend both report the
// failure and the pod fails.
func TestRenderedJobModeRunsForReal(t *testing.T) {
	if os.Geteuid() != 0 {
		testtools.Unavailable(t, "running pods as their user in a chroot needs root")
	}
	s3 := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	repo := s3.Repo("jobmode", "cluster-a")
	rc := newReceiver(t)
	pvc := t.TempDir()
	if err := os.WriteFile(filepath.Join(pvc, "data.txt"), []byte(strings.Repeat("cairn\n", 5000)), 0o644); err != nil {
		t.Fatal(err)
	}
	values := func(url string) string { return jobModeValues(url, s3, rc, "token-123", "") }
	m := helmTemplate(t, values(repo))
	c := &cluster{cairn: buildCairn(t), claims: map[string]string{"app-data": pvc}}
	if r := c.run(t, m, m.pod(t, "Job/nightly-cairn-init")); r.exitCode != 0 {
		t.Fatalf("init: exit %d\n%s", r.exitCode, r.stderr)
	}
	r := c.run(t, m, m.pod(t, "CronJob/nightly-cairn-backup-app"))
	if r.exitCode != 0 {
		t.Fatalf("job-mode backup: exit %d\n%s%s", r.exitCode, r.stdout, r.stderr)
	}
	snaps := oracle.New(t).WithPassword(password).WithEnv(
		"AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_DEFAULT_REGION="+s3.Region).
		Snapshots(repo, "-o", "s3.bucket-lookup=path", "--host", "cluster-a-app")
	if len(snaps) != 1 {
		t.Fatalf("restic finds %d snapshots of cluster-a-app, want 1", len(snaps))
	}

	rc.mu.Lock()
	if len(rc.webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(rc.webhooks))
	}
	path, body, _ := strings.Cut(rc.webhooks[0], " ")
	var hook struct {
		Status   string `json:"status"`
		ExitCode int    `json:"exit_code"`
		Sources  []struct {
			Source  string `json:"source"`
			Host    string `json:"host"`
			Summary struct {
				SnapshotID string `json:"snapshot_id"`
				FilesNew   int    `json:"files_new"`
			} `json:"summary"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(body), &hook); err != nil {
		t.Fatalf("webhook body %s: %v", body, err)
	}
	if path != "/hook/token-123" || hook.Status != "success" || len(hook.Sources) != 1 ||
		hook.Sources[0].Host != "cluster-a-app" || hook.Sources[0].Summary.SnapshotID != snaps[0].ID || hook.Sources[0].Summary.FilesNew != 1 {
		t.Errorf("webhook %s: %s", path, body)
	}
	labels := `{source="app",host="cluster-a-app",repository="` + repo + `"}`
	for _, want := range []string{
		`cairn_backup_last_success_timestamp_seconds` + labels,
		`cairn_backup_files_new` + labels + ` 1`,
		`cairn_backup_success` + labels + ` 1`,
		`cairn_backup_snapshots` + labels + ` 1`,
	} {
		if !strings.Contains(rc.pushes["POST /metrics/job/cairn/source/app"], want) {
			t.Errorf("Pushgateway push lacks %q: %v", want, rc.pushes)
		}
	}
	if !strings.Contains(rc.pushes["PUT /metrics/job/cairn/run/backup-app"], `cairn_job_success{run="backup-app"} 1`) {
		t.Errorf("job metrics push: %v", rc.pushes)
	}
	repoGroup := "POST /metrics/job/cairn/repository@base64/" + base64.RawURLEncoding.EncodeToString([]byte(repo))
	if !strings.Contains(rc.pushes[repoGroup], `cairn_backup_repository_size_bytes{repository="`+repo+`"} `) {
		t.Errorf("repository metrics push: %v", rc.pushes)
	}
	// The job's stderr is JSON records (auto: not a terminal).
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil {
			t.Errorf("job-mode stderr line is not a JSON record: %q", line)
		}
	}
	for _, h := range rc.webhooks {
		if strings.Contains(h, password) || strings.Contains(h, s3.SecretKey) {
			t.Error("a webhook carries a secret")
		}
	}
	rc.webhooks, rc.pushes = nil, map[string]string{}
	rc.mu.Unlock()

	// The check CronJob runs through `cairn run` as well: its error count
	// reaches the Pushgateway and the webhook.
	if r := c.run(t, m, m.pod(t, "CronJob/nightly-cairn-check")); r.exitCode != 0 {
		t.Fatalf("job-mode check: exit %d\n%s%s", r.exitCode, r.stdout, r.stderr)
	}
	rc.mu.Lock()
	if !strings.Contains(rc.pushes[repoGroup], `cairn_check_errors{repository="`+repo+`"} 0`) ||
		!strings.Contains(rc.pushes["PUT /metrics/job/cairn/run/check"], `cairn_job_success{run="check"} 1`) {
		t.Errorf("check metrics: %v", rc.pushes)
	}
	if len(rc.webhooks) != 1 || !strings.Contains(rc.webhooks[0], `"name":"check"`) || !strings.Contains(rc.webhooks[0], `"num_errors":0`) {
		t.Errorf("check webhook: %q", rc.webhooks)
	}
	rc.webhooks, rc.pushes = nil, map[string]string{}
	rc.mu.Unlock()

	// An unreachable backend: the pod fails, the webhook and the metrics
	// say so.
	down := helmTemplate(t, values("s3:http://127.0.0.1:1/jobmode/cluster-a"))
	r = c.run(t, down, down.pod(t, "CronJob/nightly-cairn-backup-app"))
	if r.exitCode == 0 {
		t.Fatal("a backup to an unreachable backend succeeded")
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.webhooks) != 1 || !strings.Contains(rc.webhooks[0], `"status":"failure"`) || !strings.Contains(rc.webhooks[0], "connection refused") {
		t.Errorf("failure webhook: %q", rc.webhooks)
	}
	if !strings.Contains(rc.pushes["POST /metrics/job/cairn/source/app"], `cairn_backup_success{source="app",host="cluster-a-app",repository="s3:http://127.0.0.1:1/jobmode/cluster-a"} 0`) ||
		!strings.Contains(rc.pushes["PUT /metrics/job/cairn/run/backup-app"], `cairn_job_success{run="backup-app"} 0`) {
		t.Errorf("failure metrics: %v", rc.pushes)
	}
	if strings.Contains(rc.pushes["POST /metrics/job/cairn/source/app"], "cairn_backup_last_success_timestamp_seconds") {
		t.Error("a failed run pushed a last-success time (it would overwrite the real one)")
	}
}

// jobModeValues are the chart values of the job-mode runs: the repository
// on s3 at url, a PVC source, the webhook (with hookToken in its URL, a
// secret the logs must not show) and the Pushgateway on rc, plus extra
// YAML appended as is.
func jobModeValues(url string, s3 *testserver.S3, rc *receiver, hookToken, extra string) string {
	return `
repository:
  url: ` + url + `
  password: ` + password + `
  credentials:
    AWS_ACCESS_KEY_ID: ` + s3.AccessKey + `
    AWS_SECRET_ACCESS_KEY: ` + s3.SecretKey + `
    CAIRN_WEBHOOK_URL: ` + rc.srv.URL + `/hook/` + hookToken + `
  env:
    AWS_DEFAULT_REGION: ` + s3.Region + `
  options:
    s3.bucket-lookup: path
backup:
  pvcs: [{name: app, claimName: app-data, host: cluster-a-app}]
jobMode:
  enabled: true
  webhook: {enabled: true, retries: 1}
metrics:
  pushgatewayUrl: ` + rc.srv.URL + `
` + extra
}
