// Package units parses the sizes restic's flags take (--exclude-larger-than,
// --read-data-subset, --max-unused, --max-repack-size, …), so that every
// cairn flag reads "10M" alike.
package units

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
)

// ParseBytes parses a size the way restic does: a decimal number of bytes,
// optionally followed by b/B (bytes), k/K (KiB), m/M (MiB), g/G (GiB) or
// t/T (TiB). Negative sizes, fractions and sizes beyond int64 are errors.
func ParseBytes(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	num, unit := s[:len(s)-1], uint64(1)
	switch s[len(s)-1] {
	case 'b', 'B':
	case 'k', 'K':
		unit = 1 << 10
	case 'm', 'M':
		unit = 1 << 20
	case 'g', 'G':
		unit = 1 << 30
	case 't', 'T':
		unit = 1 << 40
	default:
		num = s
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	hi, lo := bits.Mul64(uint64(v), unit)
	if hi != 0 || int64(lo) < 0 {
		return 0, fmt.Errorf("size %q: %w", s, strconv.ErrRange)
	}
	return int64(lo), nil
}
