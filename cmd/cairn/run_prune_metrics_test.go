package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo"
)

// packFiles is data/'s pack files by name, with their sizes.
func packFiles(t *testing.T, repoDir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(repoDir, "data"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
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

// The prune step reports what it did: a run shaped like the Helm chart's
// retention run (no sources, forget then prune) writes cairn_prune_*
// metrics and a "prune" object in the webhook whose packs_deleted and
// bytes_deleted match what left data/; a prune that fails reports
// cairn_prune_success 0 and no figures or last-success time.
func TestRunJobPruneMetrics(t *testing.T) {
	repoDir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir)
	src := t.TempDir()
	data := make([]byte, 2<<20)
	fillRandom(data)
	writeJobFile(t, filepath.Join(src, "old"), string(data))
	r.ok("backup", "-q", "--host", "h", src)
	if err := os.Remove(filepath.Join(src, "old")); err != nil {
		t.Fatal(err)
	}
	writeJobFile(t, filepath.Join(src, "new"), "small\n")
	r.ok("backup", "-q", "--host", "h", src)
	before := packFiles(t, repoDir)

	rc := newReceiver(t)
	textfile := filepath.Join(t.TempDir(), "cairn.prom")
	cfg := filepath.Join(t.TempDir(), "forget.yaml")
	writeJobFile(t, cfg, `
name: forget
forget: [--keep-last, "1", --group-by, "host,paths"]
prune: {args: [--max-unused, "0"]}
webhook: {url: `+rc.srv.URL+`/hook}
metrics: {textfile: `+textfile+`}
`)
	res := r.ok("run", "--config", cfg)
	after := packFiles(t, repoDir)
	deleted, freed := 0, int64(0)
	for name, size := range before {
		if _, ok := after[name]; !ok {
			deleted++
			freed += size
		}
	}
	if deleted == 0 || freed < 2<<20 {
		t.Fatalf("prune deleted %d packs of %d bytes; want the 2 MiB file's packs gone", deleted, freed)
	}
	if n := len(r.snapshotIDs(t)); n != 1 {
		t.Errorf("%d snapshots after forget --keep-last 1", n)
	}

	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	m := parseProm(t, string(prom))
	l := `{repository="` + repoDir + `"}`
	if v := m.get(t, "cairn_prune_success"+l); v != 1 {
		t.Errorf("cairn_prune_success %v", v)
	}
	if v := m.get(t, "cairn_prune_packs_deleted"+l); v != float64(deleted) {
		t.Errorf("cairn_prune_packs_deleted %v, want %d", v, deleted)
	}
	if v := m.get(t, "cairn_prune_bytes_deleted"+l); v != float64(freed) {
		t.Errorf("cairn_prune_bytes_deleted %v, want %d", v, freed)
	}
	if m.get(t, "cairn_prune_last_success_timestamp_seconds"+l) != m.get(t, "cairn_prune_last_run_timestamp_seconds"+l) {
		t.Error("last success and last run of a successful prune differ")
	}
	if v := m.get(t, "cairn_prune_duration_seconds"+l); v <= 0 {
		t.Errorf("cairn_prune_duration_seconds %v", v)
	}
	if v := m.get(t, `cairn_job_success{run="forget"}`); v != 1 {
		t.Errorf("cairn_job_success %v", v)
	}

	hook := rc.lastWebhook(t)
	if p := hook.Prune; hook.Name != "forget" || hook.Status != "success" || p == nil || p.ExitCode != 0 ||
		p.PacksDeleted == nil || *p.PacksDeleted != deleted || p.BytesDeleted == nil || *p.BytesDeleted != freed {
		t.Errorf("webhook %+v, prune %+v", hook, hook.Prune)
	}
	var step map[string]any
	for _, rec := range jsonLines(t, res.stderr) {
		if rec["msg"] == "step finished" && rec["step"] == "prune" {
			step = rec
		}
	}
	if step == nil || step["packs_deleted"] != float64(deleted) || step["bytes_deleted"] != float64(freed) {
		t.Errorf("prune step record %v", step)
	}

	// A failing prune: success 0, no figures, no last-success time.
	bad := filepath.Join(t.TempDir(), "prune.yaml")
	writeJobFile(t, bad, `
name: prune
prune: {args: [--max-unused, lots]}
webhook: {url: `+rc.srv.URL+`/hook}
metrics: {textfile: `+textfile+`}
`)
	res = r.expect(1, "run", "--config", bad)
	prom, err = os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	m = parseProm(t, string(prom))
	if v := m.get(t, "cairn_prune_success"+l); v != 0 {
		t.Errorf("cairn_prune_success %v after a failed prune", v)
	}
	for _, name := range []string{"cairn_prune_packs_deleted", "cairn_prune_bytes_deleted", "cairn_prune_last_success_timestamp_seconds"} {
		if _, ok := m[name+l]; ok {
			t.Errorf("a failed prune reports %s", name)
		}
	}
	hook = rc.lastWebhook(t)
	if p := hook.Prune; hook.Status != "failure" || p == nil || p.ExitCode != 1 || p.PacksDeleted != nil ||
		!strings.Contains(hook.Error, "prune: ") {
		t.Errorf("failure webhook %+v, prune %+v", hook, hook.Prune)
	}
}

// A prune step that finds the repository locked makes the whole run exit
// 11, as `cairn prune` does, and the run's error names the lock's holder
// rather than the unlock hint that ends the child's message.
func TestRunJobPruneLocked(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	_, lock, err := openRepo(t, dir).Lock(t.Context(), false, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	rc := newReceiver(t)
	cfg := filepath.Join(t.TempDir(), "prune.yaml")
	writeJobFile(t, cfg, "name: prune\nprune: {}\nwebhook: {url: "+rc.srv.URL+"/hook}\n")
	r.expect(exitLocked, "run", "--config", cfg)
	hook := rc.lastWebhook(t)
	if hook.ExitCode != exitLocked || hook.Prune == nil || hook.Prune.ExitCode != exitLocked ||
		!strings.Contains(hook.Error, "already locked") || strings.Contains(hook.Error, "unlock") {
		t.Errorf("webhook %+v, prune %+v", hook, hook.Prune)
	}
}
