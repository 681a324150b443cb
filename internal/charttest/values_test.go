package charttest

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// Installing without what the jobs need fails with a message that says
// what to set; the schema rejects typos and wrong types readably.
func TestBadValuesFailClearly(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		want         []string // all must appear in helm's error
	}{
		{"no values", ``, []string{"repository.password is required", "existingSecret"}},
		{"password without url", "repository: {password: x}", []string{"repository.url is required"}},
		{"typo in a key", devValues + "backup: {schedul: '0 3 * * *'}", []string{"schedul", "additional properties"}},
		{"wrong type", devValues + "check: {readData: 'yes'}", []string{"readData", "boolean"}},
		{"typo at the top", devValues + "netwrokPolicy: {enabled: true}", []string{"netwrokPolicy"}},
		{"schedule not cron", devValues + "backup: {schedule: 'every night'}", []string{"schedule"}},
		{"source schedule not cron", devValues + "backup: {pvcs: [{name: a, claimName: c, schedule: '0 2 * *'}]}", []string{"schedule"}},
		{"bad subset", devValues + "check: {readDataSubset: 'half'}", []string{"readDataSubset"}},
		{"bad sftp url", devValues + "backup: {sftp: [{name: a, url: 'web1:/var', sshSecret: s}]}", []string{"url"}},
		{"source without claim", devValues + "backup: {pvcs: [{name: a}]}", []string{"claimName"}},
		{"source name not a DNS label", devValues + "backup: {pvcs: [{name: My_Data, claimName: c}]}", []string{"name"}},
		{"duplicate source", devValues + "backup: {pvcs: [{name: a, claimName: c}], sftp: [{name: a, url: 'sftp://h/p', sshSecret: s}]}", []string{`"a" is used twice`}},
		{"restore without target", devValues + "restore: {enabled: true}", []string{"restore.targetClaim is required"}},
		{"forget without policy", devValues + "forget: {enabled: true}", []string{"forget.keep is required"}},
		{"unknown keep flag", devValues + "forget: {enabled: true, keep: {keep-dayly: 3}}", []string{"keep-dayly"}},
		{"password with existingSecret", "repository: {existingSecret: s, password: x}", []string{"ignored with repository.existingSecret"}},
		{"externalSecret without store", "repository: {url: 's3:x'}\nexternalSecret: {enabled: true}", []string{"secretStoreRef.name is required"}},
		{"bad preset", devValues + "resourcesPreset: huge", []string{"resourcesPreset"}},
		{"bad log format", devValues + "logFormat: xml", []string{"logFormat"}},
		{"typo in prune", devValues + "prune: {enabled: true, schedul: '0 6 * * 6'}", []string{"schedul", "additional properties"}},
		{"prune schedule not cron", devValues + "prune: {enabled: true, schedule: weekly}", []string{"schedule"}},
		{"bad prune maxUnused", devValues + "prune: {enabled: true, maxUnused: lots}", []string{"maxUnused"}},
		{"bad prune maxRepackSize", devValues + "prune: {maxRepackSize: 10GB}", []string{"maxRepackSize"}},
		{"prune retryLock not a duration", devValues + "prune: {retryLock: 'two hours'}", []string{"retryLock"}},
		{"forget retryLock not a duration", devValues + "forget: {retryLock: 30}", []string{"retryLock"}},
		{"prune enabled not a boolean", devValues + "prune: {enabled: 'yes'}", []string{"enabled", "boolean"}},
		{"prune twice", devValues + "forget: {enabled: true, keep: {keep-last: 3}, prune: true}\nprune: {enabled: true}", []string{"forget.prune and prune.enabled"}},
		{"pushgateway without job mode", devValues + "metrics: {pushgatewayUrl: 'http://pg:9091'}", []string{"metrics.pushgatewayUrl needs jobMode.enabled"}},
		{"reserved source name", devValues + "jobMode: {enabled: true}\nbackup: {pvcs: [{name: forget, claimName: c}]}", []string{`"forget" is reserved`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmTemplate(t, valuesFile(t, tc.values))
			if err == nil {
				t.Fatalf("values %q rendered; want a failure mentioning %q", tc.values, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestExistingSecretAndIdentity(t *testing.T) {
	r := render(t, filepath.Join(chartDir(t), "ci", "existing-secret-values.yaml"))
	if s := r.all("Secret"); len(s) != 0 {
		t.Errorf("a Secret is rendered with existingSecret: %v", s[0].Name)
	}
	for name, p := range r.podSpecs() {
		if ref := p.Spec.Containers[0].EnvFrom[0].SecretRef.Name; ref != "cairn-repository" {
			t.Errorf("%s reads Secret %q, want the existing cairn-repository", name, ref)
		}
		if env := envOf(p); env["CAIRN_PUSHGATEWAY_URL"] != "http://pushgateway.monitoring:9091" || env["RESTIC_REPOSITORY"] == "" {
			t.Errorf("%s: env %v", name, env)
		}
	}
	sa := r.get(t, "ServiceAccount", "nightly-cairn").Obj.(*corev1.ServiceAccount)
	if sa.Annotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/cairn-backup" {
		t.Errorf("IRSA annotation missing: %v", sa.Annotations)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount hands out its token")
	}
	// The Pushgateway needs job mode: the check CronJob runs `cairn run`
	// with the check.yaml of the job ConfigMap.
	check := &r.cronJob(t, "nightly-cairn-check").Spec.JobTemplate.Spec.Template
	if key := jobFile(t, "check", check); key != "check.yaml" {
		t.Errorf("check CronJob mounts %q, want check.yaml", key)
	}
	if c := runConfigs(t, r)["check.yaml"].Check; c == nil || !slices.Equal(c.Args, []string{"--read-data"}) {
		t.Errorf("check step %+v, want args [--read-data]", c)
	}
	if len(r.all("Role")) != 0 {
		t.Error("a Role is rendered although cairn needs no API access")
	}
}

func envOf(p *corev1.PodTemplateSpec) map[string]string {
	env := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

func TestCheckSubsetAndOptions(t *testing.T) {
	r := renderInline(t, `
check: {readDataSubset: "10%", extraArgs: [--with-cache]}
repository:
  options: {s3.region: eu-west-1}
`, valuesFile(t, devValues))
	got := args(&r.cronJob(t, "nightly-cairn-check").Spec.JobTemplate.Spec.Template)
	want := []string{"check", "--read-data-subset", "10%", "--with-cache", "-o", "s3.region=eu-west-1"}
	if !slices.Equal(got, want) {
		t.Errorf("check args %q, want %q", got, want)
	}
	r = renderInline(t, devValues+"check: {readData: true, readDataSubset: 1/7}")
	if got := args(&r.cronJob(t, "nightly-cairn-check").Spec.JobTemplate.Spec.Template); !slices.Equal(got, []string{"check", "--read-data"}) {
		t.Errorf("readData with a subset: args %q, want --read-data alone", got)
	}
	r = renderInline(t, devValues+"check: {enabled: false}")
	if len(r.cronJobs()) != 0 {
		t.Error("check disabled still renders a CronJob")
	}
}

func TestSFTPSourcesMountKeysReadOnly(t *testing.T) {
	r := render(t, filepath.Join(chartDir(t), "ci", "sftp-values.yaml"))
	cm := r.get(t, "ConfigMap", "nightly-cairn-ssh").Obj.(*corev1.ConfigMap)
	repoBlock := "Host storage.example.com\n  IdentityFile /etc/cairn/ssh/repository/identity\n  IdentitiesOnly yes\n  UserKnownHostsFile /etc/cairn/ssh/repository/known_hosts\n"
	for key, host := range map[string]string{"source-web1": "web1.example.com", "source-db1": "db1.example.com", "repository": ""} {
		conf := cm.Data[key]
		if !strings.Contains(conf, repoBlock) {
			t.Errorf("ssh config %s lacks the repository's block:\n%s", key, conf)
		}
		if host != "" {
			name := strings.TrimPrefix(key, "source-")
			block := "Host " + host + "\n  IdentityFile /etc/cairn/ssh/" + name + "/identity\n  IdentitiesOnly yes\n  UserKnownHostsFile /etc/cairn/ssh/" + name + "/known_hosts\n"
			if !strings.HasPrefix(conf, block) {
				t.Errorf("ssh config %s does not start with its host's block:\n%s", key, conf)
			}
		}
	}
	for _, tc := range []struct {
		cronJob, source, secret, identityKey string
		args                                 []string
	}{
		{"nightly-cairn-backup-web1", "web1", "web1-ssh", "id_ed25519",
			[]string{"backup", "--host", "web1.example.com", "--exclude", "/var/www/cache", "sftp://backup@web1.example.com/var/www"}},
		{"nightly-cairn-backup-db1", "db1", "db1-ssh", "id_rsa",
			[]string{"backup", "--host", "db1", "sftp://backup@db1.example.com:2222/var/backups"}},
	} {
		p := &r.cronJob(t, tc.cronJob).Spec.JobTemplate.Spec.Template
		if got := args(p); !slices.Equal(got, tc.args) {
			t.Errorf("%s args %q, want %q", tc.cronJob, got, tc.args)
		}
		vols := map[string]corev1.Volume{}
		for _, v := range p.Spec.Volumes {
			vols[v.Name] = v
		}
		for vol, secret := range map[string]string{"ssh-" + tc.source: tc.secret, "ssh-repository": "storage-ssh"} {
			s := vols[vol].Secret
			if s == nil || s.SecretName != secret {
				t.Fatalf("%s: volume %s = %+v, want Secret %s", tc.cronJob, vol, vols[vol], secret)
			}
			if s.DefaultMode == nil || *s.DefaultMode != 0o400 {
				t.Errorf("%s: Secret %s defaultMode %v, want 0400", tc.cronJob, secret, s.DefaultMode)
			}
			paths := []string{}
			for _, it := range s.Items {
				paths = append(paths, it.Path)
			}
			if !slices.Equal(paths, []string{"identity", "known_hosts"}) {
				t.Errorf("%s: Secret %s items %v", tc.cronJob, secret, s.Items)
			}
		}
		if k := vols["ssh-"+tc.source].Secret.Items[0].Key; k != tc.identityKey {
			t.Errorf("%s: identity from key %q, want %q", tc.cronJob, k, tc.identityKey)
		}
		if it := vols["ssh-config"].ConfigMap; it == nil || it.Items[0].Key != "source-"+tc.source || it.Items[0].Path != "config" {
			t.Errorf("%s: ssh config volume %+v", tc.cronJob, vols["ssh-config"])
		}
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range p.Spec.Containers[0].VolumeMounts {
			mounts[m.MountPath] = m
		}
		for _, path := range []string{"/home/cairn/.ssh", "/etc/cairn/ssh/" + tc.source, "/etc/cairn/ssh/repository"} {
			if m, ok := mounts[path]; !ok || !m.ReadOnly {
				t.Errorf("%s: %s mounted %+v, want read-only", tc.cronJob, path, m)
			}
		}
		// fsGroup makes the 0400 files readable by the non-root user.
		if fg := p.Spec.SecurityContext.FSGroup; fg == nil || *fg != *p.Spec.SecurityContext.RunAsUser {
			t.Errorf("%s: fsGroup %v", tc.cronJob, fg)
		}
	}
	// The check job reaches the SFTP repository with the repository's key only.
	p := &r.cronJob(t, "nightly-cairn-check").Spec.JobTemplate.Spec.Template
	var sshVols []string
	for _, v := range p.Spec.Volumes {
		if strings.HasPrefix(v.Name, "ssh-") {
			sshVols = append(sshVols, v.Name)
		}
	}
	if !slices.Equal(sshVols, []string{"ssh-config", "ssh-repository"}) {
		t.Errorf("check pod SSH volumes %v, want the config and the repository's key", sshVols)
	}
	// Without SSH anywhere there is no ssh config at all.
	if cms := renderInline(t, devValues).all("ConfigMap"); len(cms) != 0 {
		t.Errorf("an SSH ConfigMap is rendered without SFTP: %v", cms[0].Name)
	}
}

func TestRestoreJob(t *testing.T) {
	file := filepath.Join(chartDir(t), "ci", "restore-values.yaml")
	r := render(t, file)
	jobs := r.all("Job")
	var restore []string
	for _, j := range jobs {
		if strings.Contains(j.Name, "-restore-") {
			restore = append(restore, j.Name)
		}
	}
	if len(restore) != 1 {
		t.Fatalf("restore Jobs %v, want one", restore)
	}
	j := r.job(t, restore[0])
	if len(j.Annotations) != 0 {
		t.Errorf("restore Job is a hook (%v); it must be a plain Job", j.Annotations)
	}
	p := &j.Spec.Template
	want := []string{"restore", "latest", "--target", "/restore", "--host", "app", "--path", "/data/app",
		"--tag", "nightly", "--include", "/data/app/uploads", "--verify"}
	if got := args(p); !slices.Equal(got, want) {
		t.Errorf("restore args\n got %q\nwant %q", got, want)
	}
	var target *corev1.Volume
	for i, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			target = &p.Spec.Volumes[i]
		}
	}
	if target == nil || target.PersistentVolumeClaim.ClaimName != "app-data-restored" || target.PersistentVolumeClaim.ReadOnly {
		t.Fatalf("restore target volume %+v", target)
	}
	i := slices.IndexFunc(p.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/restore" })
	if i < 0 || p.Spec.Containers[0].VolumeMounts[i].ReadOnly || p.Spec.Containers[0].VolumeMounts[i].SubPath != "restored" {
		t.Errorf("restore target mount %+v", p.Spec.Containers[0].VolumeMounts)
	}
	if e := envOf(p); e["RESTIC_CACERT"] != "/etc/cairn/tls/ca.crt" {
		t.Errorf("RESTIC_CACERT = %q", e["RESTIC_CACERT"])
	}
	if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 0 {
		t.Errorf("restore backoffLimit %v, want 0: a failed restore is looked at, not retried", j.Spec.BackoffLimit)
	}
	// Same request, same name (an upgrade leaves the Job alone); another
	// snapshot, another Job.
	again := render(t, file)
	if !slices.ContainsFunc(again.all("Job"), func(m manifest) bool { return m.Name == restore[0] }) {
		t.Error("the same restore settings render another Job name")
	}
	other := renderInline(t, "restore: {snapshot: 4bba301e}", file)
	if slices.ContainsFunc(other.all("Job"), func(m manifest) bool { return m.Name == restore[0] }) {
		t.Error("a different snapshot keeps the restore Job's name, so the upgrade would not run it")
	}
	if !slices.ContainsFunc(other.all("Job"), func(m manifest) bool {
		return strings.Contains(m.Name, "-restore-") && slices.Contains(args(&m.Obj.(*batchv1.Job).Spec.Template), "4bba301e")
	}) {
		t.Error("no restore Job for snapshot 4bba301e")
	}
}

func TestInitHookAndHelmTest(t *testing.T) {
	r := renderInline(t, devValues+"init: {extraArgs: [--repository-version, '2']}")
	j := r.job(t, "nightly-cairn-init")
	if got := j.Annotations["helm.sh/hook"]; got != "post-install,post-upgrade" {
		t.Errorf("init hook %q, want post-install,post-upgrade", got)
	}
	if got := j.Annotations["helm.sh/hook-delete-policy"]; got != "before-hook-creation,hook-succeeded" {
		t.Errorf("init hook delete policy %q", got)
	}
	if got := args(&j.Spec.Template); !slices.Equal(got, []string{"init", "--repository-version", "2"}) {
		t.Errorf("init args %q", got)
	}
	if j.Spec.ActiveDeadlineSeconds == nil || *j.Spec.ActiveDeadlineSeconds != 600 {
		t.Errorf("init activeDeadlineSeconds %v, want 600: a hook must not hang an upgrade", j.Spec.ActiveDeadlineSeconds)
	}
	pod := r.get(t, "Pod", "nightly-cairn-test").Obj.(*corev1.Pod)
	if pod.Annotations["helm.sh/hook"] != "test" || !slices.Equal(pod.Spec.Containers[0].Args, []string{"snapshots"}) {
		t.Errorf("helm test pod: hook %q args %q", pod.Annotations["helm.sh/hook"], pod.Spec.Containers[0].Args)
	}
	if pod.Labels["app.kubernetes.io/component"] != "test" || pod.Labels["app.kubernetes.io/instance"] != release {
		t.Errorf("helm test pod labels %v", pod.Labels)
	}
	r = renderInline(t, devValues+"init: {enabled: false}\ntests: {enabled: false}")
	if len(r.all("Job")) != 0 || len(r.all("Pod")) != 0 {
		t.Error("init or test pod rendered although disabled")
	}
}

func TestNetworkPolicy(t *testing.T) {
	if nps := renderInline(t, devValues).all("NetworkPolicy"); len(nps) != 0 {
		t.Fatal("NetworkPolicy rendered although off by default")
	}
	r := render(t, filepath.Join(chartDir(t), "ci", "networkpolicy-values.yaml"))
	np := r.get(t, "NetworkPolicy", "nightly-cairn").Obj.(*networkingv1.NetworkPolicy)
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) || len(np.Spec.Ingress) != 0 {
		t.Errorf("policy types %v, ingress rules %d: want both types and no ingress", np.Spec.PolicyTypes, len(np.Spec.Ingress))
	}
	if sel := np.Spec.PodSelector.MatchLabels; sel["app.kubernetes.io/instance"] != release || sel["app.kubernetes.io/name"] != "cairn" {
		t.Errorf("pod selector %v", sel)
	}
	for name, p := range r.podSpecs() {
		for k, v := range np.Spec.PodSelector.MatchLabels {
			if p.Labels[k] != v {
				t.Errorf("%s is not selected by the NetworkPolicy (label %s=%q)", name, k, p.Labels[k])
			}
		}
	}
	if len(np.Spec.Egress) != 2 {
		t.Fatalf("%d egress rules, want DNS and backend", len(np.Spec.Egress))
	}
	dns := np.Spec.Egress[0]
	if len(dns.Ports) != 2 || dns.Ports[0].Port.IntValue() != 53 || dns.To[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" {
		t.Errorf("DNS rule %+v", dns)
	}
	backend := np.Spec.Egress[1]
	if len(backend.To) != 2 || backend.Ports[0].Port.IntValue() != 443 {
		t.Fatalf("backend rule %+v", backend)
	}
	if v4 := backend.To[0].IPBlock; v4.CIDR != "0.0.0.0/0" || !slices.Equal(v4.Except, []string{"169.254.169.254/32"}) {
		t.Errorf("IPv4 block %+v: the metadata server is not cut out", v4)
	}
	if v6 := backend.To[1].IPBlock; v6.CIDR != "::/0" || len(v6.Except) != 0 {
		t.Errorf("IPv6 block %+v, want no except", v6)
	}

	// The metadata server is cut out of exactly the CIDRs that contain it.
	r = renderInline(t, devValues+`
networkPolicy:
  enabled: true
  backend: {cidrs: [10.0.0.0/8, 169.254.0.0/16, 128.0.0.0/1, 169.254.169.254/32, 169.254.169.0/24, 169.254.170.0/24], ports: [443]}
`)
	np = r.get(t, "NetworkPolicy", "nightly-cairn").Obj.(*networkingv1.NetworkPolicy)
	for _, to := range np.Spec.Egress[1].To {
		contains := map[string]bool{"10.0.0.0/8": false, "169.254.0.0/16": true, "128.0.0.0/1": true,
			"169.254.169.254/32": true, "169.254.169.0/24": true, "169.254.170.0/24": false}[to.IPBlock.CIDR]
		if got := len(to.IPBlock.Except) == 1; got != contains {
			t.Errorf("CIDR %s: except %v, want the metadata server cut out: %v", to.IPBlock.CIDR, to.IPBlock.Except, contains)
		}
	}

	// With allowMetadataServer (GKE Workload Identity) nothing is cut out
	// and the metadata server gets its own rule.
	r = render(t, filepath.Join(chartDir(t), "ci", "monitoring-values.yaml"))
	np = r.get(t, "NetworkPolicy", "nightly-cairn").Obj.(*networkingv1.NetworkPolicy)
	last := np.Spec.Egress[len(np.Spec.Egress)-1]
	if last.To[0].IPBlock == nil || last.To[0].IPBlock.CIDR != "169.254.169.254/32" {
		t.Errorf("no rule for the metadata server: %+v", last)
	}
	if ex := np.Spec.Egress[1].To[0].IPBlock.Except; len(ex) != 0 {
		t.Errorf("metadata server still cut out: %v", ex)
	}
}

func TestMonitoringAndIdentity(t *testing.T) {
	r := render(t, filepath.Join(chartDir(t), "ci", "monitoring-values.yaml"))
	rule := *r.get(t, "PrometheusRule", "nightly-cairn").Obj.(*map[string]any)
	b := jsonText(t, rule)
	for _, want := range []string{"CairnBackupFailed", "CairnBackupTooOld", "cairn_backup_last_success_timestamp_seconds > 93600", "CairnCheckErrors", `"release":"kube-prometheus-stack"`} {
		if !strings.Contains(b, want) {
			t.Errorf("PrometheusRule lacks %q:\n%s", want, b)
		}
	}
	cm := r.get(t, "ConfigMap", "nightly-cairn-dashboard").Obj.(*corev1.ConfigMap)
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["cairn.json"]), &dash); err != nil || len(dash.Panels) < 4 {
		t.Fatalf("dashboard JSON: %v, %d panels", err, len(dash.Panels))
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard labels %v", cm.Labels)
	}
	es := *r.get(t, "ExternalSecret", "nightly-cairn").Obj.(*map[string]any)
	b = jsonText(t, es)
	if !strings.Contains(b, `"target":{"creationPolicy":"Owner","name":"nightly-cairn"}`) {
		t.Errorf("ExternalSecret does not create the Secret the pods read: %s", b)
	}
	if len(r.all("Secret")) != 0 {
		t.Error("chart-managed Secret rendered beside the ExternalSecret")
	}
	sa := r.get(t, "ServiceAccount", "nightly-cairn").Obj.(*corev1.ServiceAccount)
	if sa.Annotations["iam.gke.io/gcp-service-account"] == "" {
		t.Errorf("Workload Identity annotation missing: %v", sa.Annotations)
	}

	r = renderInline(t, devValues+"cloudIdentity: {azureClientId: 11111111-2222-3333-4444-555555555555}")
	sa = r.get(t, "ServiceAccount", "nightly-cairn").Obj.(*corev1.ServiceAccount)
	if sa.Annotations["azure.workload.identity/client-id"] == "" {
		t.Errorf("Azure client-id annotation missing: %v", sa.Annotations)
	}
	for name, p := range r.podSpecs() {
		if p.Labels["azure.workload.identity/use"] != "true" {
			t.Errorf("%s lacks the azure.workload.identity/use label", name)
		}
	}
}

// Reading files of any owner is an explicit opt-in, and the only way the
// chart runs as root or adds a capability.
func TestReadAsRootOptIn(t *testing.T) {
	r := renderInline(t, devValues+"podSecurity: {readAsRoot: true}\nbackup: {pvcs: [{name: a, claimName: c}]}")
	p := &r.cronJob(t, "nightly-cairn-backup-a").Spec.JobTemplate.Spec.Template
	if u := p.Spec.SecurityContext.RunAsUser; u == nil || *u != 0 {
		t.Errorf("runAsUser %v, want 0", u)
	}
	c := p.Spec.Containers[0].SecurityContext
	if !slices.Equal(c.Capabilities.Add, []corev1.Capability{"DAC_READ_SEARCH"}) || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities %+v, want drop ALL, add DAC_READ_SEARCH only", c.Capabilities)
	}
	if !*c.ReadOnlyRootFilesystem || *c.AllowPrivilegeEscalation {
		t.Error("root opt-in loosened the rest of the posture")
	}
}

func TestRBACOnlyWhenRulesGiven(t *testing.T) {
	r := renderInline(t, devValues+"rbac: {create: true, rules: [{apiGroups: [''], resources: [pods/exec], verbs: [create]}]}")
	if len(r.all("Role")) != 1 || len(r.all("RoleBinding")) != 1 {
		t.Fatalf("Role/RoleBinding not rendered with rules")
	}
	for name, p := range r.podSpecs() {
		if p.Spec.AutomountServiceAccountToken == nil || !*p.Spec.AutomountServiceAccountToken {
			t.Errorf("%s: RBAC rules given but the token is not mounted", name)
		}
	}
	if r := renderInline(t, devValues+"rbac: {create: true}"); len(r.all("Role")) != 0 {
		t.Error("an empty Role is rendered")
	}
}

// jsonText is v as JSON, without HTML escapes, so that PromQL reads as written.
func jsonText(t *testing.T, v any) string {
	t.Helper()
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestJobMode(t *testing.T) {
	r := render(t, filepath.Join(chartDir(t), "ci", "jobmode-values.yaml"))
	cm := r.get(t, "ConfigMap", "nightly-cairn-job").Obj.(*corev1.ConfigMap)
	type jobConfig struct {
		Name    string
		Check   *struct{ Args []string }
		Sources []struct {
			Name, Host string
			Paths      []string
			Tags       []string
		}
		Webhook struct {
			URLEnv   string `json:"urlEnv"`
			Template string
			URL      string
		}
	}
	for _, tc := range []struct{ source, host, path string }{
		{"app", "app", "/data/app"}, {"web1", "web1", "sftp://backup@web1.example.com/var/www"},
	} {
		var cfg jobConfig
		if err := yaml.Unmarshal([]byte(cm.Data[tc.source+".yaml"]), &cfg); err != nil {
			t.Fatalf("%s.yaml: %v", tc.source, err)
		}
		if cfg.Name != "backup-"+tc.source || cfg.Check != nil {
			t.Errorf("%s.yaml: name %q, check %v; want backup-%s and no check", tc.source, cfg.Name, cfg.Check, tc.source)
		}
		if len(cfg.Sources) != 1 || cfg.Sources[0].Host != tc.host || !slices.Equal(cfg.Sources[0].Paths, []string{tc.path}) ||
			!slices.Equal(cfg.Sources[0].Tags, []string{"nightly"}) {
			t.Errorf("%s.yaml sources %+v", tc.source, cfg.Sources)
		}
		if cfg.Webhook.URLEnv != "CAIRN_WEBHOOK_URL" || cfg.Webhook.URL != "" || !strings.Contains(cfg.Webhook.Template, ".Status") {
			t.Errorf("%s.yaml webhook %+v: the URL must come from the Secret", tc.source, cfg.Webhook)
		}
		p := &r.cronJob(t, "nightly-cairn-backup-"+tc.source).Spec.JobTemplate.Spec.Template
		if got := args(p); !slices.Equal(got, []string{"run", "--config", "/etc/cairn/job/job.yaml"}) {
			t.Errorf("%s args %q", tc.source, got)
		}
		var vol *corev1.Volume
		for i := range p.Spec.Volumes {
			if p.Spec.Volumes[i].Name == "job" {
				vol = &p.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.ConfigMap == nil || vol.ConfigMap.Items[0].Key != tc.source+".yaml" || vol.ConfigMap.Items[0].Path != "job.yaml" {
			t.Errorf("%s: job config volume %+v", tc.source, vol)
		}
	}
	if strings.Contains(jsonText(t, cm.Data), "hooks.example.com") {
		t.Error("the webhook URL is in the ConfigMap")
	}
	// The check runs through `cairn run` too, so its error count is pushed.
	var cfg jobConfig
	if err := yaml.Unmarshal([]byte(cm.Data["check.yaml"]), &cfg); err != nil {
		t.Fatalf("check.yaml: %v", err)
	}
	if cfg.Name != "check" || len(cfg.Sources) != 0 || cfg.Check == nil || !slices.Equal(cfg.Check.Args, []string{"--read-data-subset", "1/7"}) ||
		cfg.Webhook.URLEnv != "CAIRN_WEBHOOK_URL" {
		t.Errorf("check.yaml %+v (check %+v)", cfg, cfg.Check)
	}
	p := &r.cronJob(t, "nightly-cairn-check").Spec.JobTemplate.Spec.Template
	if got := args(p); !slices.Equal(got[:3], []string{"run", "--config", "/etc/cairn/job/job.yaml"}) {
		t.Errorf("check args %q", got)
	}
	mounted := false
	for _, v := range p.Spec.Volumes {
		mounted = mounted || v.ConfigMap != nil && v.ConfigMap.Items[0].Key == "check.yaml" && v.ConfigMap.Items[0].Path == "job.yaml"
	}
	if !mounted {
		t.Errorf("the check pod does not mount check.yaml as its job.yaml: %+v", p.Spec.Volumes)
	}
	for name, p := range r.podSpecs() {
		if env := envOf(p); env["CAIRN_LOG_FORMAT"] != "json" || env["CAIRN_PUSHGATEWAY_URL"] == "" {
			t.Errorf("%s: CAIRN_LOG_FORMAT %q, CAIRN_PUSHGATEWAY_URL %q", name, env["CAIRN_LOG_FORMAT"], env["CAIRN_PUSHGATEWAY_URL"])
		}
	}
	// Off by default: plain backups, no job ConfigMap.
	d := renderInline(t, devValues+"backup: {pvcs: [{name: a, claimName: c}]}")
	if args(&d.cronJob(t, "nightly-cairn-backup-a").Spec.JobTemplate.Spec.Template)[0] != "backup" ||
		args(&d.cronJob(t, "nightly-cairn-check").Spec.JobTemplate.Spec.Template)[0] != "check" {
		t.Error("job mode is on by default")
	}
	if _, ok := envOf(&d.cronJob(t, "nightly-cairn-check").Spec.JobTemplate.Spec.Template)["CAIRN_LOG_FORMAT"]; ok {
		t.Error("CAIRN_LOG_FORMAT set without logFormat")
	}
	// Job mode with the backups off still renders the check's config.
	c := renderInline(t, devValues+"jobMode: {enabled: true}\nbackup: {enabled: false}")
	if cm := c.get(t, "ConfigMap", "nightly-cairn-job").Obj.(*corev1.ConfigMap); cm.Data["check.yaml"] == "" || len(cm.Data) != 1 {
		t.Errorf("job ConfigMap without backups: %v", cm.Data)
	}
}
