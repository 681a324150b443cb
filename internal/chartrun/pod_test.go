package chartrun

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/testtools"
)

// The parts of the rendered manifests a pod needs; the strict decoding into
// the real Kubernetes types is internal/charttest's job.
type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		JobTemplate struct {
			Spec struct {
				Template podTemplate `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
		Template podTemplate `yaml:"template"`
		podSpec  `yaml:",inline"`
	} `yaml:"spec"`
}

type podTemplate struct {
	Spec podSpec `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsUser  *uint32 `yaml:"runAsUser"`
		RunAsGroup *uint32 `yaml:"runAsGroup"`
		FSGroup    *uint32 `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers []struct {
		Args []string `yaml:"args"`
		Env  []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom any    `yaml:"valueFrom"`
		} `yaml:"env"`
		EnvFrom []struct {
			SecretRef struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name     string    `yaml:"name"`
		EmptyDir *struct{} `yaml:"emptyDir"`
		Secret   *struct {
			SecretName  string    `yaml:"secretName"`
			DefaultMode *uint32   `yaml:"defaultMode"`
			Items       []keyPath `yaml:"items"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name  string    `yaml:"name"`
			Items []keyPath `yaml:"items"`
		} `yaml:"configMap"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type keyPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

// manifests is the rendered chart by "Kind/name".
type manifests map[string]*object

func parseManifests(t *testing.T, out string) manifests {
	t.Helper()
	m := manifests{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return m
		}
		if err != nil {
			t.Fatalf("parse rendered manifests: %v", err)
		}
		if o.Kind != "" {
			obj := o
			m[o.Kind+"/"+o.Metadata.Name] = &obj
		}
	}
}

// pod returns the pod spec of a CronJob, Job or Pod.
func (m manifests) pod(t *testing.T, kindName string) *podSpec {
	t.Helper()
	o, ok := m[kindName]
	if !ok {
		var have []string
		for k := range m {
			have = append(have, k)
		}
		t.Fatalf("no %s rendered; have %v", kindName, have)
	}
	switch o.Kind {
	case "CronJob":
		return &o.Spec.JobTemplate.Spec.Template.Spec
	case "Job":
		return &o.Spec.Template.Spec
	default:
		return &o.Spec.podSpec
	}
}

// cluster is what the kubelet would find in the namespace: Secrets created
// outside the chart and the PVCs' contents.
type cluster struct {
	secrets map[string]map[string]string // name -> key -> content
	claims  map[string]string            // claim name -> host directory
	cairn   string                       // the static cairn binary
}

// podRun is one execution of a rendered pod.
type podRun struct {
	root     string // the pod's root directory
	exitCode int
	stdout   string
	stderr   string
}

// run lays the pod out under a fresh root directory and runs its container
// there: cairn at /usr/local/bin/cairn (as in the image), every volume at
// its mountPath, files with the modes and group a kubelet would give them,
// as the pod's user, chrooted. PVC contents are copied in (read-only is the
// manifest's promise, checked by internal/charttest); a claim's directory is
// copied back out after the run so that a restore can be read.
func (c *cluster) run(t *testing.T, m manifests, p *podSpec) podRun {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ctr := p.Containers[0]
	uid, gid := *p.SecurityContext.RunAsUser, *p.SecurityContext.RunAsGroup
	fsGroup := gid
	if p.SecurityContext.FSGroup != nil {
		fsGroup = *p.SecurityContext.FSGroup
	}
	mkdir := func(dir string, mode fs.FileMode, owner uint32) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, int(owner), int(fsGroup)); err != nil {
			t.Fatal(err)
		}
	}
	install(t, c.cairn, filepath.Join(root, "usr/local/bin/cairn"), 0o755)
	// Every container runtime provides /dev/null (exec.Cmd opens it for a
	// child without stdin).
	mkdir(filepath.Join(root, "dev"), 0o755, 0)
	if err := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		testtools.Unavailable(t, "mknod /dev/null in the pod's root: %v", err)
	}

	vols := map[string]int{}
	for i, v := range p.Volumes {
		vols[v.Name] = i
	}
	var claimMounts [][2]string
	for _, vm := range ctr.VolumeMounts {
		i, ok := vols[vm.Name]
		if !ok {
			t.Fatalf("mount %s names no volume", vm.Name)
		}
		v := p.Volumes[i]
		dst := filepath.Join(root, vm.MountPath)
		switch {
		case v.EmptyDir != nil:
			mkdir(dst, 0o777, 0) // an emptyDir is world-writable
		case v.Secret != nil:
			data, ok := c.secrets[v.Secret.SecretName]
			if !ok {
				t.Fatalf("the pod mounts Secret %s, which the test did not create", v.Secret.SecretName)
			}
			mode := fs.FileMode(0o644)
			if v.Secret.DefaultMode != nil {
				mode = fs.FileMode(*v.Secret.DefaultMode)
			}
			// With fsGroup, the kubelet gives the group read access and
			// makes fsGroup the files' group.
			mode |= 0o040
			mkdir(dst, 0o755, 0)
			for _, it := range v.Secret.Items {
				content, ok := data[it.Key]
				if !ok {
					t.Fatalf("Secret %s has no key %s", v.Secret.SecretName, it.Key)
				}
				writeOwned(t, filepath.Join(dst, it.Path), content, mode, 0, fsGroup)
			}
		case v.ConfigMap != nil:
			cm, ok := m["ConfigMap/"+v.ConfigMap.Name]
			if !ok {
				t.Fatalf("the pod mounts ConfigMap %s, which the chart did not render", v.ConfigMap.Name)
			}
			mkdir(dst, 0o755, 0)
			for _, it := range v.ConfigMap.Items {
				writeOwned(t, filepath.Join(dst, it.Path), cm.Data[it.Key], 0o644, 0, fsGroup)
			}
		case v.PersistentVolumeClaim != nil:
			src, ok := c.claims[v.PersistentVolumeClaim.ClaimName]
			if !ok {
				t.Fatalf("the pod claims %s, which the test did not provide", v.PersistentVolumeClaim.ClaimName)
			}
			src = filepath.Join(src, vm.SubPath)
			mkdir(filepath.Dir(dst), 0o755, 0)
			copyTree(t, src, dst)
			volumeOwnership(t, dst, fsGroup, vm.ReadOnly)
			claimMounts = append(claimMounts, [2]string{dst, src})
		default:
			t.Fatalf("volume %s: unsupported kind", v.Name)
		}
	}

	env := []string{"PATH=/usr/local/bin"}
	for _, e := range ctr.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s uses valueFrom, which this runner does not emulate", e.Name)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	for _, ef := range ctr.EnvFrom {
		data, ok := c.secrets[ef.SecretRef.Name]
		if !ok {
			if o, rendered := m["Secret/"+ef.SecretRef.Name]; rendered {
				data = o.StringData
			} else {
				t.Fatalf("envFrom Secret %s exists neither in the chart nor in the test", ef.SecretRef.Name)
			}
		}
		for k, v := range data {
			env = append(env, k+"="+v)
		}
	}

	cmd := exec.Command("/usr/local/bin/cairn", ctr.Args...)
	cmd.Dir = "/"
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{fsGroup}},
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := podRun{root: root, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.exitCode = exit.ExitCode()
	default:
		t.Fatalf("run %v: %v", ctr.Args, err)
	}
	// What the pod wrote to its claims persists, as on a real volume.
	for _, cm := range claimMounts {
		if err := os.RemoveAll(cm[1]); err != nil {
			t.Fatal(err)
		}
		copyTree(t, cm[0], cm[1])
	}
	t.Logf("cairn %s: exit %d\n%s%s", strings.Join(ctr.Args, " "), res.exitCode, tail(res.stdout), tail(res.stderr))
	return res
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

func install(t *testing.T, src, dst string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeOwned(t *testing.T, path, content string, mode fs.FileMode, uid, gid uint32) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies a directory tree with modes and modification times (what
// a backup looks at), readable by the pod's user.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: only files and directories are supported", p)
		}
		if err := os.Chmod(target, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(target, info.ModTime(), info.ModTime())
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// volumeOwnership does what the kubelet does to a volume for a pod with an
// fsGroup: the group becomes fsGroup and gets read (and, unless read-only,
// write) access; directories get the setgid bit.
func volumeOwnership(t *testing.T, dir string, fsGroup uint32, readOnly bool) {
	t.Helper()
	fileMask, dirMask := fs.FileMode(0o660), fs.FileMode(0o770)
	if readOnly {
		fileMask, dirMask = 0o440, 0o550
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Lchown(p, 0, int(fsGroup)); err != nil {
			return err
		}
		mode := info.Mode().Perm() | fileMask
		if d.IsDir() {
			mode = info.Mode().Perm() | dirMask | fs.ModeSetgid
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		return os.Chtimes(p, info.ModTime(), info.ModTime())
	})
	if err != nil {
		t.Fatalf("volume ownership of %s: %v", dir, err)
	}
}
