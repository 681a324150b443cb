package main

import (
	"fmt"

	"crypto/sha256"
	"encoding/hex"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// packIDs returns the sorted distinct pack IDs named as "pack ID" in out.
var packIDRe = regexp.MustCompile(`pack ([0-9a-f]{64})`)

func packIDs(out string) []string {
	var ids []string
	for _, m := range packIDRe.FindAllStringSubmatch(out, -1) {
		if !slices.Contains(ids, m[1]) {
			ids = append(ids, m[1])
		}
	}
	slices.Sort(ids)
	return ids
}

// TestCheckLikeRestic damages copies of a cairn-made repository of the
// test tree in the ways the issue lists and asks both cairn check and
// restic 0.19.1 check, with and without --read-data: the verdicts (exit 0
// or 1) must agree, and so must the pack IDs named as damaged.
func TestCheckLikeRestic(t *testing.T) {
	t.Parallel()
	m := compatFixture(t, 50)
	b := &badRepo{dir: newRepo(t)}
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	r.ok("-r", b.dir, "--no-cache", "backup", m.Root)
	o := oracleFor(t)
	data, trees := packsByType(t, b.dir)
	if len(data) == 0 || len(trees) == 0 {
		t.Fatalf("%d data and %d tree packs", len(data), len(trees))
	}
	only := func(dir, sub string) string {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil || len(entries) == 0 {
			t.Fatalf("%s/: %v, %v", sub, entries, err)
		}
		return filepath.Join(dir, sub, entries[0].Name())
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// want: expected exit codes without and with --read-data (both
		// tools must agree with each other too).
		want [2]int
	}{
		{"clean", func(*testing.T, string) {}, [2]int{0, 0}},
		{"data-pack-flipped-byte", func(t *testing.T, dir string) { rawDamages[1].do(t, dir, data[0]) }, [2]int{0, 1}},
		{"data-pack-deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, data[0])); err != nil {
				t.Fatal(err)
			}
		}, [2]int{1, 1}},
		{"data-pack-truncated", func(t *testing.T, dir string) { rawDamages[0].do(t, dir, data[0]) }, [2]int{1, 1}},
		{"tree-pack-flipped-byte", func(t *testing.T, dir string) { rawDamages[1].do(t, dir, trees[0]) }, [2]int{1, 1}},
		{"index-flipped-byte", func(t *testing.T, dir string) {
			rel, _ := filepath.Rel(dir, only(dir, "index"))
			rawDamages[1].do(t, dir, rel)
		}, [2]int{1, 1}},
		{"index-deleted", func(t *testing.T, dir string) {
			if err := os.Remove(only(dir, "index")); err != nil {
				t.Fatal(err)
			}
		}, [2]int{1, 1}},
		{"snapshot-truncated", func(t *testing.T, dir string) {
			p := only(dir, "snapshots")
			os.Chmod(p, 0o600)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, [2]int{1, 1}},
		{"extra-unreferenced-pack", func(t *testing.T, dir string) {
			junk := pseudoRandom(4096)
			sum := sha256.Sum256(junk)
			name := hex.EncodeToString(sum[:])
			p := filepath.Join(dir, "data", name[:2], name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, junk, 0o600); err != nil {
				t.Fatal(err)
			}
		}, [2]int{0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := b.copyRepo(t)
			c.damage(t, dir)
			for i, readData := range []bool{false, true} {
				args := []string{"--no-cache", "check"}
				if readData {
					args = append(args, "--read-data")
				}
				rr := o.Run(dir, args...)
				cr := r.run(append([]string{"-r", dir}, args...)...)
				noPanic(t, cr)
				if rr.ExitCode != c.want[i] {
					t.Fatalf("restic %v: exit %d, test expects %d\nstdout:\n%s\nstderr:\n%s", args, rr.ExitCode, c.want[i], rr.Stdout, rr.Stderr)
				}
				if cr.code != rr.ExitCode {
					t.Errorf("cairn %v exit %d, restic %d\ncairn: %s\nrestic stderr:\n%s", args, cr.code, rr.ExitCode, cr, rr.Stderr)
				}
				if got, want := packIDs(cr.stderr), packIDs(string(rr.Stderr)); !slices.Equal(got, want) {
					t.Errorf("cairn %v names packs %v, restic %v\ncairn: %s\nrestic stderr:\n%s", args, got, want, cr, rr.Stderr)
				}
				if rr.ExitCode == 0 && !strings.Contains(cr.stdout, "no errors were found") {
					t.Errorf("cairn %v: no \"no errors were found\":\n%s", args, cr)
				}
				if rr.ExitCode != 0 && !strings.Contains(cr.stderr, "Fatal: repository contains errors") {
					t.Errorf("cairn %v: no fatal message:\n%s", args, cr)
				}
				// The JSON summary (error count, broken packs, hints) too.
				jargs := append([]string{"--json"}, args...)
				rj := o.Run(dir, jargs...)
				cj := r.run(append([]string{"-r", dir}, jargs...)...)
				if got, want := strings.TrimSpace(cj.stdout), strings.TrimSpace(string(rj.Stdout)); got != want {
					t.Errorf("cairn %v summary\n%s\nrestic:\n%s", jargs, got, want)
				}
			}
		})
	}
}

// TestCheckReadDataSubsetFlag: restic's validation of the flag, and n/t
// picking the packs whose first byte modulo t is n-1.
func TestCheckReadDataSubsetFlag(t *testing.T) {
	for _, c := range []struct {
		arg  string
		all  bool
		want string // error substring, "" for ok
	}{
		{"", false, ""}, {"1/2", false, ""}, {"2/2", false, ""}, {"10%", false, ""}, {"2.5%", false, ""},
		{"50M", false, ""}, {"1024", false, ""},
		{"1/2", true, "cannot be used together"},
		{"0/2", false, "n <= t"}, {"3/2", false, "n <= t"}, {"1/257", false, "at most 256"},
		{"1/2/3", false, "invalid value"}, {"0%", false, "above 0.0%"}, {"101%", false, "above 0.0%"},
		{"x%", false, "invalid value"}, {"abc", false, "invalid value"}, {"0", false, "must be above 0"},
	} {
		_, err := parseReadDataSubset(c.arg, c.all)
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%q (read-data %v): error %v, want %q", c.arg, c.all, err, c.want)
		}
	}
	packs := map[blob.ID]int64{}
	for i := 0; i < 256; i++ {
		var id blob.ID
		id[0], id[1] = byte(i), 7
		packs[id] = int64(i)
	}
	seen := map[blob.ID]int{}
	for n := 1; n <= 3; n++ {
		f, err := parseReadDataSubset(fmt.Sprintf("%d/3", n), false)
		if err != nil {
			t.Fatal(err)
		}
		for id := range f(packs) {
			if int(id[0])%3 != n-1 {
				t.Errorf("group %d/3 holds pack with first byte %d", n, id[0])
			}
			seen[id]++
		}
	}
	if len(seen) != len(packs) {
		t.Errorf("the 3 groups cover %d of %d packs", len(seen), len(packs))
	}
	f, _ := parseReadDataSubset("10%", false)
	if got := len(f(packs)); got != 25 {
		t.Errorf("10%% of 256 packs: %d picked, want 25", got)
	}
}

// TestCheckExitCodes: restic's exit codes for a missing repository, a wrong
// password and a repository locked exclusively by someone else.
func TestCheckExitCodes(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	r.expect(exitNoRepository, "-r", filepath.Join(t.TempDir(), "none"), "check")
	r.with("RESTIC_PASSWORD=wrong").expect(exitWrongPassword, "-r", dir, "check")
	res := r.ok("-r", dir, "check")
	if !strings.Contains(res.stdout, "no errors were found") {
		t.Errorf("empty repository:\n%s", res)
	}
	if locks := lockFiles(t, dir); len(locks) != 0 {
		t.Errorf("check left locks behind: %v", locks)
	}
	// Like restic's, check takes an exclusive lock: it refuses to run
	// beside anything else rather than check a repository being changed.
	_, held, err := openRepo(t, dir).Lock(t.Context(), false, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	res = r.expect(exitLocked, "-r", dir, "check")
	noPanic(t, res)
	r.ok("-r", dir, "--no-lock", "check")
}
