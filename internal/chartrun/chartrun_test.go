package chartrun

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/internal/testtools"
)

const password = "chart-run-password"

// buildCairn builds the static binary the image holds.
func buildCairn(t *testing.T) string {
	t.Helper()
	root, err := testtools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cairn")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/cairn")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/cairn: %v\n%s", err, b)
	}
	return out
}

func helmTemplate(t *testing.T, values string) manifests {
	t.Helper()
	root, err := testtools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	vf := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testtools.Binary(t, "helm"), "template", "nightly", filepath.Join(root, "charts", "cairn"),
		"--namespace", "backup", "--kube-version", "1.33.5", "-f", vf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	return parseManifests(t, stdout.String())
}

// TestRenderedJobsRunForReal renders the chart for a repository on a real
// S3 server, a PVC source and a remote host over SFTP, then runs the init,
// backup, forget, prune, restore and helm-test pods exactly as rendered, and reads
// the result with restic.
func TestRenderedJobsRunForReal(t *testing.T) {
	if os.Geteuid() != 0 {
		testtools.Unavailable(t, "running pods as their user in a chroot needs root")
	}
	s3 := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	sshd := sshtest.Start(t)
	repo := s3.Repo("chart", "cluster-a")
	cairn := buildCairn(t)

	// The PVC's contents and the remote host's directory.
	pvc := t.TempDir()
	files := map[string]string{"app/config.yaml": "listen: :8080\n", "app/uploads/a.txt": strings.Repeat("a", 100000), "README": "data volume\n"}
	for name, content := range files {
		p := filepath.Join(pvc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	remote := t.TempDir()
	if err := os.WriteFile(filepath.Join(remote, "index.html"), []byte("<h1>web1</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(sshd.UserKey.Path)
	if err != nil {
		t.Fatal(err)
	}
	knownHosts, err := os.ReadFile(sshd.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}

	values := `
repository:
  url: ` + repo + `
  password: ` + password + `
  credentials:
    AWS_ACCESS_KEY_ID: ` + s3.AccessKey + `
    AWS_SECRET_ACCESS_KEY: ` + s3.SecretKey + `
  env:
    AWS_DEFAULT_REGION: ` + s3.Region + `
  options:
    s3.bucket-lookup: path
backup:
  tags: [nightly]
  excludes: ["*.tmp"]
  pvcs:
    - name: app
      claimName: app-data
      host: cluster-a-app
  sftp:
    - name: web1
      url: sftp://` + sshd.User + `@127.0.0.1:` + strconv.Itoa(sshd.Port) + remote + `
      sshSecret: web1-ssh
forget:
  enabled: true
  keep: {keep-last: 1}
prune:
  enabled: true
  maxUnused: "0"
  retryLock: 1m
restore:
  enabled: true
  snapshot: latest
  host: cluster-a-app
  includes: [/data/app/app]
  targetClaim: restored
  verify: true
`
	m := helmTemplate(t, values)
	restored := t.TempDir()
	c := &cluster{
		cairn:   cairn,
		secrets: map[string]map[string]string{"web1-ssh": {"id_ed25519": string(key), "known_hosts": string(knownHosts)}},
		claims:  map[string]string{"app-data": pvc, "restored": restored},
	}
	restic := oracle.New(t).WithPassword(password).WithEnv(
		"AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_DEFAULT_REGION="+s3.Region)
	snapshots := func(args ...string) []oracle.Snapshot {
		return restic.Snapshots(repo, append([]string{"-o", "s3.bucket-lookup=path"}, args...)...)
	}
	mustExit := func(r podRun, code int, what string) {
		t.Helper()
		if r.exitCode != code {
			t.Fatalf("%s exited %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.exitCode, code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, password) || strings.Contains(r.stdout+r.stderr, s3.SecretKey) {
			t.Errorf("%s printed a secret", what)
		}
	}

	mustExit(c.run(t, m, m.pod(t, "Job/nightly-cairn-init")), 0, "init hook")
	if s := snapshots(); len(s) != 0 { // restic opens the new repository
		t.Fatalf("a new repository holds %d snapshots", len(s))
	}

	for round := 1; round <= 2; round++ {
		mustExit(c.run(t, m, m.pod(t, "CronJob/nightly-cairn-backup-app")), 0, "backup of the PVC")
		mustExit(c.run(t, m, m.pod(t, "CronJob/nightly-cairn-backup-web1")), 0, "backup of the SFTP host")
	}
	app := snapshots("--host", "cluster-a-app")
	web := snapshots("--host", "web1")
	if len(app) != 2 || len(web) != 2 {
		t.Fatalf("snapshots: %d of the PVC, %d of the SFTP host; want 2 each (two rounds)", len(app), len(web))
	}
	if !slices.Equal(app[0].Paths, []string{"/data/app"}) || !slices.Equal(web[0].Paths, []string{remote}) {
		t.Errorf("snapshot paths %v and %v, want [/data/app] and [%s]", app[0].Paths, web[0].Paths, remote)
	}
	if !slices.Equal(app[0].Tags, []string{"nightly"}) {
		t.Errorf("snapshot tags %v, want [nightly]", app[0].Tags)
	}
	// The stable --host makes the second run find the first as its parent,
	// although every run is a "new pod".
	if app[1].Parent != app[0].ID || web[1].Parent != web[0].ID {
		t.Errorf("second snapshots' parents %q and %q, want the first snapshots %s and %s", app[1].Parent, web[1].Parent, app[0].ShortID, web[0].ShortID)
	}

	mustExit(c.run(t, m, m.pod(t, "CronJob/nightly-cairn-forget")), 0, "forget")
	if n, w := len(snapshots("--host", "cluster-a-app")), len(snapshots("--host", "web1")); n != 1 || w != 1 {
		t.Errorf("after forget --keep-last 1: %d and %d snapshots, want 1 per host", n, w)
	}
	// The prune CronJob of its own, plain `cairn prune --max-unused 0
	// --retry-lock 1m`: the repository stays sound and keeps its snapshots.
	mustExit(c.run(t, m, m.pod(t, "CronJob/nightly-cairn-prune")), 0, "prune")
	if n, w := len(snapshots("--host", "cluster-a-app")), len(snapshots("--host", "web1")); n != 1 || w != 1 {
		t.Errorf("after prune: %d and %d snapshots, want still 1 per host", n, w)
	}
	restic.MustCheck(repo, true, "-o", "s3.bucket-lookup=path")

	var restoreJob string
	for name := range m {
		if strings.HasPrefix(name, "Job/nightly-cairn-restore-") {
			restoreJob = name
		}
	}
	mustExit(c.run(t, m, m.pod(t, restoreJob)), 0, "restore")
	for name, content := range files {
		got, err := os.ReadFile(filepath.Join(restored, "data", "app", name))
		switch {
		case strings.HasPrefix(name, "app/") && (err != nil || string(got) != content):
			t.Errorf("restored %s: %v (%d bytes, want %d)", name, err, len(got), len(content))
		case !strings.HasPrefix(name, "app/") && err == nil:
			t.Errorf("restored %s, which --include left out", name)
		}
	}

	res := c.run(t, m, m.pod(t, "Pod/nightly-cairn-test"))
	mustExit(res, 0, "helm test")
	for _, want := range []string{"cluster-a-app", "web1", "/data/app"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("helm test output lacks %q:\n%s", want, res.stdout)
		}
	}

	// The check CronJob runs once cairn has a check command.
	if out, err := exec.Command(cairn, "check", "--help").CombinedOutput(); err != nil {
		t.Logf("check CronJob not run: this cairn has no check command yet (%v: %s)", err, bytes.TrimSpace(out))
	} else {
		mustExit(c.run(t, m, m.pod(t, "CronJob/nightly-cairn-check")), 0, "check")
	}

	// A wrong password in the Secret fails the jobs with restic's code 12
	// and never prints either password.
	bad := helmTemplate(t, strings.Replace(values, "password: "+password, "password: wrong-"+password, 1))
	r := c.run(t, bad, bad.pod(t, "CronJob/nightly-cairn-backup-app"))
	if r.exitCode != 12 {
		t.Errorf("backup with a wrong password exited %d, want 12\n%s", r.exitCode, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, password) {
		t.Error("a failed job printed the password")
	}
	if n := len(snapshots("--host", "cluster-a-app")); n != 1 {
		t.Errorf("%d snapshots after the failed backup, want still 1", n)
	}
}
