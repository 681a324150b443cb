package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The prune step: after a forget that drops a snapshot, `prune:` runs
// `cairn prune` with its args, the dropped data's packs are gone, the
// repository size metric shrinks accordingly, and the step is logged.
func TestRunJobPruneStep(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir)
	r.ok("init")
	src := t.TempDir()
	data := make([]byte, 2<<20)
	fillRandom(data)
	if err := os.WriteFile(filepath.Join(src, "old"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r.ok("backup", "-q", "--host", "h", src)
	if err := os.Remove(filepath.Join(src, "old")); err != nil {
		t.Fatal(err)
	}
	writeJobFile(t, filepath.Join(src, "new"), "small\n")
	before, _ := dirSize(t, filepath.Join(repoDir, "data"))

	textfile := filepath.Join(t.TempDir(), "cairn.prom")
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, `
sources: [{name: s, host: h, paths: [`+src+`]}]
forget: [--keep-last, "1"]
prune: {args: [--max-unused, "0"]}
metrics: {textfile: `+textfile+`}
`)
	res := r.ok("run", "--config", cfg)
	after, _ := dirSize(t, filepath.Join(repoDir, "data"))
	if after >= before || after > 1<<20 {
		t.Errorf("packs: %d bytes before, %d after the prune step; want the 2 MiB file's data gone", before, after)
	}
	if n := len(r.snapshotIDs(t)); n != 1 {
		t.Errorf("%d snapshots after forget --keep-last 1", n)
	}
	prom, _ := os.ReadFile(textfile)
	if v := parseProm(t, string(prom)).get(t, `cairn_backup_repository_size_bytes{repository="`+repoDir+`"}`); v != float64(after) {
		t.Errorf("repository size %v, want %d", v, after)
	}
	var pruned map[string]any
	for _, rec := range jsonLines(t, res.stderr) {
		if rec["msg"] == "step finished" && rec["step"] == "prune" {
			pruned = rec
		}
	}
	if pruned == nil || pruned["status"] != "success" {
		t.Errorf("no successful prune step record:\n%s", res.stderr)
	}
	if !strings.Contains(res.stderr, `"step":"prune","stream":"stdout"`) {
		t.Errorf("prune's output is not logged:\n%s", res.stderr)
	}
}
