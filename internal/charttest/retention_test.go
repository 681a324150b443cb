package charttest

import (
	"path/filepath"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// runConfig mirrors the keys `cairn run --config` accepts (cmd/cairn's
// jobConfig); decoding strictly into it means the chart writes no key
// cairn would refuse.
type runConfig struct {
	Name    string           `json:"name"`
	Sources []map[string]any `json:"sources"`
	Hooks   map[string]any   `json:"hooks"`
	Forget  []string         `json:"forget"`
	Prune   *struct {
		Args []string `json:"args"`
	} `json:"prune"`
	Check *struct {
		Args []string `json:"args"`
	} `json:"check"`
	Webhook struct {
		URL      string            `json:"url"`
		URLEnv   string            `json:"urlEnv"`
		Template string            `json:"template"`
		Headers  map[string]string `json:"headers"`
		Retries  *int              `json:"retries"`
		Timeout  string            `json:"timeout"`
	} `json:"webhook"`
	Metrics map[string]string `json:"metrics"`
}

// runConfigs decodes every config of the job ConfigMap strictly.
func runConfigs(t *testing.T, r rendered) map[string]runConfig {
	t.Helper()
	cm := r.get(t, "ConfigMap", "nightly-cairn-job").Obj.(*corev1.ConfigMap)
	out := map[string]runConfig{}
	for key, text := range cm.Data {
		var cfg runConfig
		if err := yaml.UnmarshalStrict([]byte(text), &cfg); err != nil {
			t.Fatalf("job ConfigMap %s: %v\n%s", key, err, text)
		}
		out[key] = cfg
	}
	return out
}

// jobFile is the ConfigMap key a job-mode pod mounts as its job.yaml, and
// whether its args are `run --config` with it.
func jobFile(t *testing.T, name string, p *corev1.PodTemplateSpec) string {
	t.Helper()
	if got := args(p); len(got) < 3 || !slices.Equal(got[:3], []string{"run", "--config", "/etc/cairn/job/job.yaml"}) {
		t.Errorf("%s: args %q, want run --config /etc/cairn/job/job.yaml", name, got)
	}
	mounted := false
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		mounted = mounted || m.Name == "job" && m.MountPath == "/etc/cairn/job" && m.ReadOnly
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == "job" && v.ConfigMap != nil && v.ConfigMap.Name == "nightly-cairn-job" && len(v.ConfigMap.Items) == 1 &&
			v.ConfigMap.Items[0].Path == "job.yaml" && mounted {
			return v.ConfigMap.Items[0].Key
		}
	}
	t.Errorf("%s mounts no job.yaml read-only from the job ConfigMap: %+v", name, p.Spec.Volumes)
	return ""
}

func forbid(t *testing.T, cj *batchv1.CronJob) {
	t.Helper()
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("%s: concurrencyPolicy %q, want Forbid", cj.Name, cj.Spec.ConcurrencyPolicy)
	}
	if c := cj.Spec.JobTemplate.Spec.Template.Labels["app.kubernetes.io/component"]; c != cj.Name[len("nightly-cairn-"):] {
		t.Errorf("%s: component label %q", cj.Name, c)
	}
}

// Retention and prune: the plain CronJobs pass the policy, the prune limits
// and --retry-lock; in job mode both run through `cairn run` with named
// configs (forget, prune) that decode as cairn's own job config.
func TestRetentionAndPrune(t *testing.T) {
	// Plain mode: a daily forget and a weekly prune CronJob of its own.
	plain := render(t, filepath.Join(chartDir(t), "ci", "s3-pvcs-values.yaml"))
	f := plain.cronJob(t, "nightly-cairn-forget")
	forbid(t, f)
	if got := args(&f.Spec.JobTemplate.Spec.Template); !slices.Equal(got, []string{"forget",
		"--keep-daily", "7", "--keep-monthly", "12", "--keep-weekly", "4", "--group-by", "host,paths"}) {
		t.Errorf("forget args %q", got)
	}
	p := plain.cronJob(t, "nightly-cairn-prune")
	forbid(t, p)
	if got := args(&p.Spec.JobTemplate.Spec.Template); !slices.Equal(got, []string{"prune", "--max-unused", "10%", "--retry-lock", "2h"}) {
		t.Errorf("prune args %q", got)
	}
	if p.Spec.Schedule != "0 6 * * 6" {
		t.Errorf("prune schedule %q, want the weekly default", p.Spec.Schedule)
	}
	for _, m := range plain.all("ConfigMap") {
		if m.Name == "nightly-cairn-job" {
			t.Error("a job ConfigMap without job mode")
		}
	}

	// Plain forget.prune: `forget --prune` with the limits forget takes
	// (not prune.extraArgs, which are `cairn prune`'s), no prune CronJob.
	fp := renderInline(t, devValues+`
forget: {enabled: true, keep: {keep-last: 3}, prune: true, retryLock: 10m, groupBy: host}
prune: {maxUnused: "0", maxRepackSize: 1G, repackUncompressed: true, extraArgs: [--dry-run]}
`)
	if got := args(&fp.cronJob(t, "nightly-cairn-forget").Spec.JobTemplate.Spec.Template); !slices.Equal(got, []string{"forget",
		"--keep-last", "3", "--group-by", "host", "--retry-lock", "10m",
		"--prune", "--max-unused", "0", "--max-repack-size", "1G", "--repack-uncompressed"}) {
		t.Errorf("forget --prune args %q", got)
	}
	if len(fp.cronJobs()) != 2 {
		t.Errorf("%d CronJobs, want check and forget only", len(fp.cronJobs()))
	}
	// Defaults: prune on its own CronJob, weekly, plain `cairn prune`.
	if d := renderInline(t, devValues+"prune: {enabled: true}").cronJob(t, "nightly-cairn-prune"); d.Spec.Schedule != "0 6 * * 6" ||
		!slices.Equal(args(&d.Spec.JobTemplate.Spec.Template), []string{"prune"}) || d.Spec.Suspend == nil || *d.Spec.Suspend {
		t.Errorf("default prune CronJob: schedule %q, args %q, suspend %v", d.Spec.Schedule, args(&d.Spec.JobTemplate.Spec.Template), d.Spec.Suspend)
	}

	// Job mode, prune after every forget: one run named forget with a
	// forget and a prune step, each waiting for the lock.
	jmFile := filepath.Join(chartDir(t), "ci", "jobmode-values.yaml")
	jm := render(t, jmFile)
	fj := jm.cronJob(t, "nightly-cairn-forget")
	forbid(t, fj)
	if key := jobFile(t, fj.Name, &fj.Spec.JobTemplate.Spec.Template); key != "forget.yaml" {
		t.Errorf("forget pod mounts %q as its job.yaml", key)
	}
	cfgs := runConfigs(t, jm)
	fc := cfgs["forget.yaml"]
	if fc.Name != "forget" || len(fc.Sources) != 0 || fc.Check != nil || fc.Hooks != nil ||
		!slices.Equal(fc.Forget, []string{"--keep-daily", "7", "--keep-weekly", "4", "--group-by", "host,paths", "--retry-lock", "30m"}) ||
		fc.Prune == nil || !slices.Equal(fc.Prune.Args, []string{"--max-unused", "5%", "--retry-lock", "30m"}) ||
		fc.Webhook.URLEnv != "CAIRN_WEBHOOK_URL" || fc.Webhook.Template == "" {
		t.Errorf("forget.yaml %+v (prune %+v)", fc, fc.Prune)
	}
	if _, ok := cfgs["prune.yaml"]; ok {
		t.Error("prune.yaml without prune.enabled")
	}
	for _, cj := range jm.cronJobs() {
		if cj.Name == "nightly-cairn-prune" {
			t.Error("a prune CronJob with forget.prune")
		}
	}

	// Job mode, prune on its own schedule: its own run named prune, with
	// prune's retryLock and extraArgs; forget.yaml has no prune step.
	own := renderInline(t, "forget: {prune: false}\nprune: {enabled: true, retryLock: 1h, extraArgs: [--repack-smaller-than, 8M]}", jmFile)
	pj := own.cronJob(t, "nightly-cairn-prune")
	forbid(t, pj)
	if key := jobFile(t, pj.Name, &pj.Spec.JobTemplate.Spec.Template); key != "prune.yaml" {
		t.Errorf("prune pod mounts %q as its job.yaml", key)
	}
	cfgs = runConfigs(t, own)
	pc := cfgs["prune.yaml"]
	if pc.Name != "prune" || len(pc.Sources) != 0 || len(pc.Forget) != 0 || pc.Check != nil || pc.Prune == nil ||
		!slices.Equal(pc.Prune.Args, []string{"--max-unused", "5%", "--retry-lock", "1h", "--repack-smaller-than", "8M"}) ||
		pc.Webhook.URLEnv != "CAIRN_WEBHOOK_URL" {
		t.Errorf("prune.yaml %+v (prune %+v)", pc, pc.Prune)
	}
	if cfgs["forget.yaml"].Prune != nil {
		t.Errorf("forget.yaml has a prune step without forget.prune: %+v", cfgs["forget.yaml"])
	}
	// Every pod of job mode keeps the posture and pushes its metrics.
	for name, p := range own.podSpecs() {
		checkPod(t, name, p)
	}
	if env := envOf(&pj.Spec.JobTemplate.Spec.Template); env["CAIRN_PUSHGATEWAY_URL"] == "" {
		t.Error("the prune pod has no CAIRN_PUSHGATEWAY_URL")
	}

	// Retention alone in job mode: the ConfigMap holds just its runs.
	alone := renderInline(t, devValues+`
jobMode: {enabled: true}
backup: {enabled: false}
check: {enabled: false}
forget: {enabled: true, keep: {keep-last: 5}}
prune: {enabled: true}
`)
	cfgs = runConfigs(t, alone)
	if len(cfgs) != 2 || cfgs["forget.yaml"].Name != "forget" || cfgs["prune.yaml"].Prune == nil || len(cfgs["prune.yaml"].Prune.Args) != 0 {
		t.Errorf("job ConfigMap of retention alone: %+v", cfgs)
	}
}
