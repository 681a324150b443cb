// Command gen writes the deterministic benchmark data sets: "mixed" (about
// 1 GiB in 20,000 files of text, logs, binary and partly sparse data, like
// perf-notes' mixed tree) and "small" (200,000 files of a few hundred bytes
// in a tree of 2,000 directories). The same seed always gives the same bytes,
// so cairn and restic read identical data.
//
//	go run ./bench/gen -kind mixed -out /tmp/bench/mixed
//	go run ./bench/gen -kind change -out /tmp/bench/mixed   # touch 1 % of it
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
	kind := flag.String("kind", "mixed", "mixed, small or change")
	out := flag.String("out", "", "output directory")
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
		err = change(*out, *seed)
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

// mixed: 20,000 files, ~1.1 GB. Most files are small to medium text; a few
// large binaries carry most of the bytes, like a real application tree.
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
		case r < 850: // logs, 10–200 KB
			size, kind = int64(10000+rng.IntN(190000)), 1
		case r < 985: // binary, 4–120 KB
			size, kind = int64(4000+rng.IntN(116000)), 2
		case r < 995: // large logs 2–20 MB
			size, kind = int64(2<<20+rng.IntN(18<<20)), 1
		default: // large binaries / images 5–60 MB
			size, kind = int64(5<<20+rng.IntN(55<<20)), 2+rng.IntN(2)
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
// new content and a new mtime.
func change(out string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x6368616e6765))
	n, changed := 0, 0
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
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
		changed++
		return writeFile(p, rng, fi.Size(), 0)
	})
	fmt.Printf("changed %d of %d files\n", changed, n)
	return err
}
