// Command gen writes the deterministic benchmark data sets: "mixed" (about
// 1.2 GB in 20,000 files of text, logs, binary and partly sparse data, like
// perf-notes' mixed tree) and "small" (200,000 files of a few hundred bytes
// in a tree of 2,000 directories). The same seed always gives the same bytes,
// so cairn and restic read identical data.
//
//	go run ./bench/gen -kind mixed -out /tmp/bench/mixed
//	go run ./bench/gen -kind change -out /tmp/bench/mixed -save /tmp/bench/orig  # rewrite 1 % of it
//	go run ./bench/gen -kind revert -out /tmp/bench/mixed -save /tmp/bench/orig  # and undo that
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

var words = []string{
	"backup", "restore", "snapshot", "repository", "index", "pack", "blob", "tree",
	"func", "return", "error", "if", "for", "range", "context", "struct", "string",
	"the", "of", "and", "to", "in", "is", "that", "with", "data", "file", "chunk",
	"GET", "POST", "200", "404", "/api/v1/items", "user", "session", "latency_ms",
	"INFO", "WARN", "DEBUG", "request", "completed", "cache", "miss", "hit",
	"{", "}", "(", ")", ":=", "==", "nil", "err", "0x1f", "true", "false",
}

var baseTime = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

func main() {
	kind := flag.String("kind", "mixed", "mixed, small, change or revert")
	out := flag.String("out", "", "output directory")
	save := flag.String("save", "", "change: copy the originals here first; revert: put them back from here")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	var err error
	switch *kind {
	case "mixed":
		err = mixed(*out, *seed)
	case "small":
		err = small(*out, *seed)
	case "change":
		err = change(*out, *save, *seed)
	case "revert":
		if *save == "" {
			log.Fatal("revert needs -save")
		}
		err = revert(*out, *save)
	default:
		err = fmt.Errorf("unknown kind %q", *kind)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func writeText(w *bufio.Writer, rng *rand.Rand, n int64, logStyle bool) error {
	var written int64
	line := 0
	for written < n {
		var s string
		if logStyle {
			s = fmt.Sprintf("2024-06-01T12:%02d:%02d.%06dZ %s %s %s id=%d\n", line/60%60, line%60, rng.IntN(1e6),
				words[36+rng.IntN(4)], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
		} else {
			k := 3 + rng.IntN(12)
			b := make([]byte, 0, 96)
			for i := 0; i < k; i++ {
				b = append(b, words[rng.IntN(len(words))]...)
				b = append(b, ' ')
			}
			b[len(b)-1] = '\n'
			s = string(b)
		}
		line++
		if written+int64(len(s)) > n {
			s = s[:n-written]
		}
		if _, err := w.WriteString(s); err != nil {
			return err
		}
		written += int64(len(s))
	}
	return nil
}

func writeRandom(w *bufio.Writer, rng *rand.Rand, n int64) error {
	buf := make([]byte, 64<<10)
	for n > 0 {
		m := int64(len(buf))
		if m > n {
			m = n
		}
		for i := 0; i < int(m); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < int(m); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := w.Write(buf[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

func writeFile(path string, rng *rand.Rand, size int64, kind int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	switch kind {
	case 0:
		err = writeText(w, rng, size, false)
	case 1:
		err = writeText(w, rng, size, true)
	case 2:
		err = writeRandom(w, rng, size)
	case 3:
		// Half zeros (like a VM image or database file), half random.
		err = writeRandom(w, rng, size/2)
		if err == nil {
			_, err = w.Write(make([]byte, size-size/2))
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	mt := baseTime.Add(time.Duration(rng.IntN(86400*365)) * time.Second)
	return os.Chtimes(path, mt, mt)
}

// mixed: 20,000 files, ~1.2 GB. Most files are small to medium text; a
// few large logs and binaries carry about half of the bytes, like a real
// application tree (perf-notes' mixed tree: 1.15 GB, zstd ratio ~1.6).
func mixed(out string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x6d69786564))
	var total int64
	for i := 0; i < 20000; i++ {
		dir := filepath.Join(out, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("s%03d", i%400))
		var size int64
		var kind int
		switch r := rng.IntN(1000); {
		case r < 600: // source-like text, 1–40 KB
			size, kind = int64(1000+rng.IntN(40000)), 0
		case r < 850: // logs, 10–100 KB
			size, kind = int64(10000+rng.IntN(90000)), 1
		case r < 995: // binary, 4–60 KB
			size, kind = int64(4000+rng.IntN(56000)), 2
		case r < 998: // large logs 2–8 MB
			size, kind = int64(2<<20+rng.IntN(6<<20)), 1
		default: // large binaries / images 4–12 MB
			size, kind = int64(4<<20+rng.IntN(8<<20)), 2+rng.IntN(2)
		}
		total += size
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("f%05d.dat", i)), rng, size, kind); err != nil {
			return err
		}
	}
	fmt.Printf("mixed: 20000 files, %d bytes\n", total)
	return nil
}

// small: 200,000 files of 100–900 bytes in 2,000 directories.
func small(out string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x736d616c6c))
	var total int64
	for i := 0; i < 200000; i++ {
		dir := filepath.Join(out, fmt.Sprintf("a%02d", i%20), fmt.Sprintf("b%03d", i%2000))
		size := int64(100 + rng.IntN(800))
		total += size
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("f%06d.txt", i)), rng, size, rng.IntN(2)); err != nil {
			return err
		}
	}
	fmt.Printf("small: 200000 files, %d bytes\n", total)
	return nil
}

// change rewrites about 1 % of the files (every 100th in walk order) with
// new content of the same size and a new mtime. With save set, each file's
// original is first copied there (with its mtime), so that revert can put
// the data set back byte for byte.
func change(out, save string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x6368616e6765))
	if save != "" {
		if _, err := os.Stat(save); err == nil {
			return fmt.Errorf("%s exists: the data set is changed already (run -kind revert first)", save)
		}
	}
	n, changed := 0, 0
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".complete" {
			return err
		}
		n++
		if n%100 != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if save != "" {
			rel, err := filepath.Rel(out, p)
			if err != nil {
				return err
			}
			if err := copyFile(p, filepath.Join(save, rel), fi.ModTime()); err != nil {
				return fmt.Errorf("save original: %w", err)
			}
		}
		changed++
		return writeFile(p, rng, fi.Size(), 0)
	})
	fmt.Printf("changed %d of %d files\n", changed, n)
	return err
}

// revert copies the originals saved by change back and removes save.
func revert(out, save string) error {
	if _, err := os.Stat(save); os.IsNotExist(err) {
		return nil // nothing changed
	}
	n := 0
	err := filepath.WalkDir(save, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(save, p)
		if err != nil {
			return err
		}
		n++
		return copyFile(p, filepath.Join(out, rel), fi.ModTime())
	})
	if err != nil {
		return fmt.Errorf("revert: %w", err)
	}
	fmt.Printf("reverted %d files\n", n)
	return os.RemoveAll(save)
}

func copyFile(from, to string, mtime time.Time) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		return err
	}
	return os.Chtimes(to, mtime, mtime)
}
