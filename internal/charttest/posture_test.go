package charttest

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// devValues is the smallest installable value set.
const devValues = `
repository:
  url: s3:https://s3.example.com/bucket/cairn
  password: dev-password
`

func TestLintStrict(t *testing.T) {
	helm := tool(t, "helm")
	sets := append(ciValues(t), valuesFile(t, devValues))
	for _, f := range sets {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := exec.Command(helm, "lint", "--strict", chartDir(t), "-f", f).CombinedOutput()
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s", err, out)
			}
			for _, bad := range []string{"[WARNING]", "[ERROR]"} {
				if strings.Contains(string(out), bad) {
					t.Errorf("helm lint --strict reports %s:\n%s", bad, out)
				}
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint output lacks the summary:\n%s", out)
			}
		})
	}
}

// Every value set renders, decodes strictly, and every pod the chart makes
// keeps the security posture, whatever the values.
func TestSecurityPosture(t *testing.T) {
	for _, f := range append(ciValues(t), valuesFile(t, devValues)) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := render(t, f)
			pods := r.podSpecs()
			if len(pods) < 3 { // init, check and the test pod at least
				t.Fatalf("only %d pod templates rendered", len(pods))
			}
			for name, p := range pods {
				checkPod(t, name, p)
			}
			for _, m := range r {
				if len(m.Name) > 52 {
					t.Errorf("%s %s: name longer than 52 characters leaves no room for Job and Pod suffixes", m.Kind, m.Name)
				}
			}
		})
	}
}

func checkPod(t *testing.T, name string, p *corev1.PodTemplateSpec) {
	t.Helper()
	s := p.Spec
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken is not false", name)
	}
	if s.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q, want Never", name, s.RestartPolicy)
	}
	psc := s.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod securityContext %+v does not run as non-root", name, psc)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile is not RuntimeDefault", name)
	}
	if len(s.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(s.Containers))
	}
	c := s.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem is not read-only", name)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation is not off", name)
	}
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("%s: capabilities %+v, want drop [ALL] and nothing added", name, sc.Capabilities)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory request and limit", name)
	}
	// Secrets reach the process only by reference, never as values.
	for _, e := range c.Env {
		if strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "SECRET") || strings.HasSuffix(e.Name, "_KEY_ID") {
			t.Errorf("%s: secret-looking variable %s set by value", name, e.Name)
		}
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name == "" {
		t.Errorf("%s: envFrom %+v, want the repository Secret", name, c.EnvFrom)
	}
	for _, a := range c.Args {
		if strings.Contains(a, "dev-password") || strings.Contains(a, "correct-horse") {
			t.Errorf("%s: the password is on the command line: %q", name, a)
		}
	}
	// Writable paths are emptyDirs; everything mounted from elsewhere but a
	// restore target is read-only.
	vols := map[string]corev1.Volume{}
	for _, v := range s.Volumes {
		vols[v.Name] = v
	}
	for _, want := range []string{"/cache", "/tmp", "/home/cairn"} {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == want })
		if i < 0 || vols[c.VolumeMounts[i].Name].EmptyDir == nil {
			t.Errorf("%s: %s is not an emptyDir mount", name, want)
		}
	}
	for _, m := range c.VolumeMounts {
		v := vols[m.Name]
		if v.EmptyDir != nil || m.MountPath == "/restore" {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("%s: volume %s mounted read-write at %s", name, m.Name, m.MountPath)
		}
		if v.PersistentVolumeClaim != nil && !v.PersistentVolumeClaim.ReadOnly {
			t.Errorf("%s: PVC %s is not claimed read-only", name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	envs := map[string]string{}
	for _, e := range c.Env {
		envs[e.Name] = e.Value
	}
	if envs["RESTIC_CACHE_DIR"] != "/cache" || envs["HOME"] != "/home/cairn" || envs["TMPDIR"] != "/tmp" {
		t.Errorf("%s: RESTIC_CACHE_DIR, HOME, TMPDIR = %q, %q, %q", name, envs["RESTIC_CACHE_DIR"], envs["HOME"], envs["TMPDIR"])
	}
}

func TestCronJobKnobs(t *testing.T) {
	r := render(t, filepath.Join(chartDir(t), "ci", "s3-pvcs-values.yaml"))
	cjs := r.cronJobs()
	if len(cjs) != 5 { // two sources, check, forget, prune
		t.Fatalf("%d CronJobs, want 5 (two PVC sources, check, forget, prune)", len(cjs))
	}
	for _, cj := range cjs {
		s := cj.Spec
		if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			t.Errorf("%s: concurrencyPolicy %q", cj.Name, s.ConcurrencyPolicy)
		}
		if s.TimeZone == nil || *s.TimeZone != "Europe/Berlin" {
			t.Errorf("%s: timeZone %v, want Europe/Berlin", cj.Name, s.TimeZone)
		}
		if s.StartingDeadlineSeconds == nil || *s.StartingDeadlineSeconds != 3600 ||
			s.SuccessfulJobsHistoryLimit == nil || *s.SuccessfulJobsHistoryLimit != 3 ||
			s.FailedJobsHistoryLimit == nil || *s.FailedJobsHistoryLimit != 3 {
			t.Errorf("%s: deadline/history %v %v %v", cj.Name, s.StartingDeadlineSeconds, s.SuccessfulJobsHistoryLimit, s.FailedJobsHistoryLimit)
		}
		js := s.JobTemplate.Spec
		if js.BackoffLimit == nil || *js.BackoffLimit != 1 || js.ActiveDeadlineSeconds == nil || *js.ActiveDeadlineSeconds != 21600 ||
			js.TTLSecondsAfterFinished == nil || *js.TTLSecondsAfterFinished != 86400 {
			t.Errorf("%s: job spec backoff %v deadline %v ttl %v", cj.Name, js.BackoffLimit, js.ActiveDeadlineSeconds, js.TTLSecondsAfterFinished)
		}
		if g := js.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
			t.Errorf("%s: terminationGracePeriodSeconds %v leaves no time to release the lock", cj.Name, g)
		}
		if f := strings.Fields(s.Schedule); len(f) != 5 {
			t.Errorf("%s: schedule %q is not five cron fields", cj.Name, s.Schedule)
		}
	}
	schedules := map[string]string{}
	for _, cj := range cjs {
		schedules[cj.Name] = cj.Spec.Schedule
	}
	want := map[string]string{
		"nightly-cairn-backup-postgres": "0 2 * * *", // the chart's default
		"nightly-cairn-backup-uploads":  "30 */6 * * *",
		"nightly-cairn-check":           "0 3 * * *",
		"nightly-cairn-forget":          "0 5 * * *",
		"nightly-cairn-prune":           "0 6 * * 6", // the chart's default: weekly
	}
	for n, s := range want {
		if schedules[n] != s {
			t.Errorf("CronJob %s schedule %q, want %q (all: %v)", n, schedules[n], s, schedules)
		}
	}
	// The defaults: backup daily at 02:00, check weekly.
	d := renderInline(t, devValues)
	if got := d.cronJob(t, "nightly-cairn-check").Spec.Schedule; got != "0 4 * * 0" {
		t.Errorf("default check schedule %q, want weekly 0 4 * * 0", got)
	}
	if len(d.cronJobs()) != 1 {
		t.Errorf("defaults render %d CronJobs, want only check (no sources, forget and prune off)", len(d.cronJobs()))
	}
	if cj := d.cronJob(t, "nightly-cairn-check"); cj.Spec.TimeZone != nil {
		t.Errorf("default timeZone %q, want none (the controller's)", *cj.Spec.TimeZone)
	}
}

func args(p *corev1.PodTemplateSpec) []string { return p.Spec.Containers[0].Args }

func TestPVCSourcesReadOnlyWithStableHost(t *testing.T) {
	r := render(t, filepath.Join(chartDir(t), "ci", "s3-pvcs-values.yaml"))
	for _, tc := range []struct {
		cronJob, claim, mount, subPath string
		args                           []string
		nodeSelector                   map[string]string
	}{{
		cronJob: "nightly-cairn-backup-postgres", claim: "data-postgres-0", mount: "/data/postgres",
		args: []string{"backup", "--host", "cluster-a-postgres", "--tag", "cluster-a",
			"--exclude", "*.tmp", "--exclude", "lost+found", "/data/postgres"},
		nodeSelector: map[string]string{"kubernetes.io/hostname": "node-1"},
	}, {
		cronJob: "nightly-cairn-backup-uploads", claim: "uploads", mount: "/data/uploads", subPath: "public",
		args: []string{"backup", "--host", "uploads", "--tag", "cluster-a", "--tag", "uploads",
			"--exclude", "*.tmp", "--exclude", "lost+found", "/data/uploads"},
	}} {
		cj := r.cronJob(t, tc.cronJob)
		p := &cj.Spec.JobTemplate.Spec.Template
		if got := args(p); !slices.Equal(got, tc.args) {
			t.Errorf("%s args\n got %q\nwant %q", tc.cronJob, got, tc.args)
		}
		var vol *corev1.Volume
		for i := range p.Spec.Volumes {
			if p.Spec.Volumes[i].PersistentVolumeClaim != nil {
				vol = &p.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.PersistentVolumeClaim.ClaimName != tc.claim || !vol.PersistentVolumeClaim.ReadOnly {
			t.Fatalf("%s: PVC volume %+v, want claim %s read-only", tc.cronJob, vol, tc.claim)
		}
		i := slices.IndexFunc(p.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == vol.Name })
		if i < 0 {
			t.Fatalf("%s: PVC not mounted", tc.cronJob)
		}
		m := p.Spec.Containers[0].VolumeMounts[i]
		if m.MountPath != tc.mount || !m.ReadOnly || m.SubPath != tc.subPath {
			t.Errorf("%s: mount %+v, want %s read-only subPath %q", tc.cronJob, m, tc.mount, tc.subPath)
		}
		if tc.nodeSelector != nil && !mapsEqual(p.Spec.NodeSelector, tc.nodeSelector) {
			t.Errorf("%s: nodeSelector %v, want %v", tc.cronJob, p.Spec.NodeSelector, tc.nodeSelector)
		}
		if cj.Labels["cairn.dev/source"] == "" {
			t.Errorf("%s: no cairn.dev/source label", tc.cronJob)
		}
	}
	// The same values render the same host: nothing depends on pod names or time.
	again := render(t, filepath.Join(chartDir(t), "ci", "s3-pvcs-values.yaml"))
	if !slices.Equal(args(&again.cronJob(t, "nightly-cairn-backup-uploads").Spec.JobTemplate.Spec.Template),
		args(&r.cronJob(t, "nightly-cairn-backup-uploads").Spec.JobTemplate.Spec.Template)) {
		t.Error("two renders of the same values differ")
	}
	forget := args(&r.cronJob(t, "nightly-cairn-forget").Spec.JobTemplate.Spec.Template)
	if want := []string{"forget", "--keep-daily", "7", "--keep-monthly", "12", "--keep-weekly", "4", "--group-by", "host,paths"}; !slices.Equal(forget, want) {
		t.Errorf("forget args %q, want %q", forget, want)
	}
	sec := r.get(t, "Secret", "nightly-cairn").Obj.(*corev1.Secret)
	if sec.StringData["RESTIC_PASSWORD"] != "correct-horse-battery-staple" || sec.StringData["AWS_SECRET_ACCESS_KEY"] == "" {
		t.Errorf("chart-managed Secret keys: %v", keys(sec.StringData))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
