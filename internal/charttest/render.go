package charttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kubeVersion is the Kubernetes version the chart is rendered for; it
// matches the kube-apiserver in tools/kube-apiserver.
const kubeVersion = "1.33.5"

// namespace and release are what every test renders into.
const (
	namespace = "backup"
	release   = "nightly"
)

// manifest is one rendered document, decoded strictly.
type manifest struct {
	Source     string // the template it came from, e.g. cairn/templates/secret.yaml
	APIVersion string
	Kind       string
	Name       string
	Raw        []byte // the YAML document as rendered
	Obj        any    // a pointer to a k8s.io/api type, or map[string]any for a CRD
}

// rendered is a rendered chart.
type rendered []manifest

// chartDir is charts/cairn in the checkout.
func chartDir(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "cairn")
}

// ciValues lists charts/cairn/ci/*-values.yaml, the realistic value sets.
func ciValues(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no value sets in charts/cairn/ci: %v", err)
	}
	return files
}

// valuesFile writes inline YAML values to a temporary file.
func valuesFile(t testing.TB, values string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// helmTemplate runs `helm template` with the value files in order and
// returns its standard output, or an error carrying its standard error.
func helmTemplate(t testing.TB, valueFiles ...string) (string, error) {
	t.Helper()
	return helmTemplateIn(t, namespace, valueFiles...)
}

// helmTemplateIn is helmTemplate for another namespace.
func helmTemplateIn(t testing.TB, ns string, valueFiles ...string) (string, error) {
	t.Helper()
	args := []string{"template", release, chartDir(t), "--namespace", ns, "--kube-version", kubeVersion}
	for _, f := range valueFiles {
		args = append(args, "-f", f)
	}
	cmd := exec.Command(tool(t, "helm"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm template: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// render renders the chart with the given value files (later ones win) and
// decodes every manifest strictly; any failure fails the test.
func render(t testing.TB, valueFiles ...string) rendered {
	t.Helper()
	out, err := helmTemplate(t, valueFiles...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeAll(out)
	if err != nil {
		t.Fatalf("values %v: %v", valueFiles, err)
	}
	return r
}

// renderInline is render with inline YAML values on top of the files.
func renderInline(t testing.TB, values string, valueFiles ...string) rendered {
	t.Helper()
	return render(t, append(valueFiles, valuesFile(t, values))...)
}

// decodeAll splits helm's output into documents and decodes each into its
// k8s.io/api type, refusing unknown fields and duplicate keys.
func decodeAll(out string) (rendered, error) {
	var r rendered
	rd := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return r, nil
		}
		if err != nil {
			return nil, fmt.Errorf("split rendered manifests: %w", err)
		}
		m, ok, err := decodeOne(doc)
		if err != nil {
			return nil, err
		}
		if ok {
			r = append(r, m)
		}
	}
}

func decodeOne(doc []byte) (m manifest, ok bool, err error) {
	for _, line := range strings.Split(string(doc), "\n") {
		if s, found := strings.CutPrefix(line, "# Source: "); found {
			m.Source = s
			break
		}
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return m, false, fmt.Errorf("%s: %w", m.Source, err)
	}
	if head.Kind == "" && head.APIVersion == "" {
		return m, false, nil // an empty document (comments only)
	}
	m.APIVersion, m.Kind, m.Name, m.Raw = head.APIVersion, head.Kind, head.Metadata.Name, doc
	switch head.APIVersion + " " + head.Kind {
	case "v1 ServiceAccount":
		m.Obj = new(corev1.ServiceAccount)
	case "v1 Secret":
		m.Obj = new(corev1.Secret)
	case "v1 ConfigMap":
		m.Obj = new(corev1.ConfigMap)
	case "v1 Pod":
		m.Obj = new(corev1.Pod)
	case "batch/v1 CronJob":
		m.Obj = new(batchv1.CronJob)
	case "batch/v1 Job":
		m.Obj = new(batchv1.Job)
	case "networking.k8s.io/v1 NetworkPolicy":
		m.Obj = new(networkingv1.NetworkPolicy)
	case "rbac.authorization.k8s.io/v1 Role":
		m.Obj = new(rbacv1.Role)
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		m.Obj = new(rbacv1.RoleBinding)
	case "external-secrets.io/v1 ExternalSecret", "monitoring.coreos.com/v1 PrometheusRule":
		m.Obj = new(map[string]any) // no Go types here; the API server test checks them against CRDs
	default:
		return m, false, fmt.Errorf("%s: unexpected %s %s: add it to decodeOne", m.Source, head.APIVersion, head.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, m.Obj); err != nil {
		return m, false, fmt.Errorf("%s: %s %s does not decode strictly: %w", m.Source, m.Kind, m.Name, err)
	}
	return m, true, nil
}

// all returns the manifests of one kind.
func (r rendered) all(kind string) []manifest {
	var out []manifest
	for _, m := range r {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// get returns the manifest of a kind and name, failing the test when absent.
func (r rendered) get(t testing.TB, kind, name string) manifest {
	t.Helper()
	for _, m := range r {
		if m.Kind == kind && m.Name == name {
			return m
		}
	}
	var have []string
	for _, m := range r {
		have = append(have, m.Kind+"/"+m.Name)
	}
	t.Fatalf("no %s %q rendered; have %v", kind, name, have)
	return manifest{}
}

func (r rendered) cronJobs() []*batchv1.CronJob {
	var out []*batchv1.CronJob
	for _, m := range r.all("CronJob") {
		out = append(out, m.Obj.(*batchv1.CronJob))
	}
	return out
}

func (r rendered) cronJob(t testing.TB, name string) *batchv1.CronJob {
	t.Helper()
	return r.get(t, "CronJob", name).Obj.(*batchv1.CronJob)
}

func (r rendered) job(t testing.TB, name string) *batchv1.Job {
	t.Helper()
	return r.get(t, "Job", name).Obj.(*batchv1.Job)
}

// podSpecs returns every pod spec the chart renders, by a readable name:
// CronJob and Job templates and the test Pod.
func (r rendered) podSpecs() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, m := range r {
		switch o := m.Obj.(type) {
		case *batchv1.CronJob:
			out["CronJob/"+m.Name] = &o.Spec.JobTemplate.Spec.Template
		case *batchv1.Job:
			out["Job/"+m.Name] = &o.Spec.Template
		case *corev1.Pod:
			out["Pod/"+m.Name] = &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec}
		}
	}
	return out
}
