package main

import (
	"crypto/sha256"
	"encoding/hex"
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
	m := compatFixture(t, 50)
	b := &badRepo{dir: newRepo(t)}
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	r.ok("-r", b.dir, "--no-cache", "backup", m.Root)
	o := oracleFor(t)
	data, _ := packsByType(t, b.dir)
	if len(data) == 0 {
		t.Fatal("no data packs")
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
			}
		})
	}
}
