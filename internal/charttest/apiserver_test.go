package charttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// kindOrder is the order objects are created in, as helm installs them:
// what pods refer to first.
var kindOrder = []string{"ServiceAccount", "Secret", "ExternalSecret", "ConfigMap", "Role", "RoleBinding",
	"NetworkPolicy", "PrometheusRule", "CronJob", "Job", "Pod"}

// Every value set is accepted by a real API server (schemas, cron syntax,
// names, strict fields), creates without warnings, and every pod it would
// run is admitted by a namespace that enforces the "restricted" Pod
// Security Standard.
func TestAPIServerAcceptsEveryValueSet(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	installCRDs(t, ctx, c)

	sets := append(ciValues(t), valuesFile(t, devValues))
	for i, f := range sets {
		name := filepath.Base(f)
		if i == len(sets)-1 {
			name = "dev-values.yaml"
		}
		t.Run(name, func(t *testing.T) {
			ns := fmt.Sprintf("set-%d", i)
			createRestrictedNamespace(t, ctx, c, ns)
			r := renderIn(t, ns, f)
			sorted := slices.Clone(r)
			slices.SortStableFunc(sorted, func(a, b manifest) int {
				return slices.Index(kindOrder, a.Kind) - slices.Index(kindOrder, b.Kind)
			})
			for _, m := range sorted {
				if slices.Index(kindOrder, m.Kind) < 0 {
					t.Fatalf("%s %s: kind not in kindOrder", m.Kind, m.Name)
				}
				// A dry run first (what `kubectl apply --dry-run=server`
				// does), then for real, so later objects can refer to it.
				for _, dry := range []bool{true, false} {
					warnings, err := c.create(ctx, ns, m.Raw, dry)
					if err != nil {
						t.Fatalf("%s (dry run %v): %v", m.Source, dry, err)
					}
					if len(warnings) > 0 {
						t.Errorf("%s %s: the API server warns: %q", m.Kind, m.Name, warnings)
					}
				}
			}
			for name, p := range r.podSpecs() {
				if err := admitPod(ctx, c, ns, p); err != nil {
					t.Errorf("%s: the restricted namespace refuses its pod: %v", name, err)
				}
			}
		})
	}

	// The checks above can fail: the same server refuses what it should.
	t.Run("refusals", func(t *testing.T) {
		createRestrictedNamespace(t, ctx, c, "refusals")
		r := renderIn(t, "refusals", valuesFile(t, devValues+"podSecurity: {readAsRoot: true}\nbackup: {schedule: '0 25 * * *', pvcs: [{name: a, claimName: c}]}"))
		for _, m := range r.all("ServiceAccount") {
			if _, err := c.create(ctx, "refusals", m.Raw, false); err != nil {
				t.Fatal(err)
			}
		}
		cj := r.get(t, "CronJob", "nightly-cairn-backup-a")
		if _, err := c.create(ctx, "refusals", cj.Raw, true); err == nil || !strings.Contains(err.Error(), "schedule") {
			t.Errorf("hour 25 accepted by the API server: %v", err)
		}
		err := admitPod(ctx, c, "refusals", r.podSpecs()["CronJob/nightly-cairn-backup-a"])
		if err == nil || !strings.Contains(err.Error(), "restricted") {
			t.Errorf("a root pod with DAC_READ_SEARCH was admitted to a restricted namespace: %v", err)
		}
		bad := strings.Replace(string(cj.Raw), "concurrencyPolicy: Forbid", "concurrencyPolicy: Forbid\n  concurency: Forbid", 1)
		if _, err := c.create(ctx, "refusals", []byte(bad), true); err == nil || !strings.Contains(err.Error(), "concurency") {
			t.Errorf("an unknown field passed strict validation: %v", err)
		}
	})
}

// renderIn renders the chart into namespace ns.
func renderIn(t *testing.T, ns string, valueFiles ...string) rendered {
	t.Helper()
	out, err := helmTemplateIn(t, ns, valueFiles...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeAll(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func installCRDs(t *testing.T, ctx context.Context, c *cluster) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "crds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if _, err := c.create(ctx, "", []byte(doc), false); err != nil {
			t.Fatalf("install CRD: %v", err)
		}
	}
	// A new CRD is served once it is established; discovery shows it then.
	for _, gv := range []struct{ apiVersion, kind string }{
		{"external-secrets.io/v1", "ExternalSecret"}, {"monitoring.coreos.com/v1", "PrometheusRule"},
	} {
		waitFor(t, 30*time.Second, os.DevNull, func() error {
			_, err := c.resource(ctx, gv.apiVersion, gv.kind)
			return err
		})
	}
}

func createRestrictedNamespace(t *testing.T, ctx context.Context, c *cluster, name string) {
	t.Helper()
	ns := corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
			"pod-security.kubernetes.io/warn":            "restricted",
		}},
	}
	b, err := yaml.Marshal(ns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.create(ctx, "", b, false); err != nil {
		t.Fatal(err)
	}
}

// admitPod dry-runs the Pod a Job would create from its template: Pod
// Security admission enforces on Pods only (it merely warns on CronJobs).
func admitPod(ctx context.Context, c *cluster, ns string, p *corev1.PodTemplateSpec) error {
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "admission-", Labels: p.Labels, Annotations: p.Annotations},
		Spec:       p.Spec,
	}
	b, err := yaml.Marshal(pod)
	if err != nil {
		return err
	}
	_, err = c.create(ctx, ns, b, true)
	return err
}
