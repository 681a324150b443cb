package prune

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/internal/units"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Options tune a prune. The zero value means restic's defaults: tolerate 5 %
// unused data, no limit on the amount repacked.
type Options struct {
	// DryRun plans and reports; Execute then changes nothing.
	DryRun bool
	// MaxUnused is how much unused data may stay after the prune (the zero
	// value is 5 %).
	MaxUnused MaxUnused
	// MaxRepackBytes, when LimitRepack is set, stops repacking once this
	// much data would be repacked (restic's --max-repack-size; 0 then means
	// no repacking at all).
	MaxRepackBytes uint64
	LimitRepack    bool
	// SmallPackBytes repacks packs smaller than this (restic's
	// --repack-smaller-than); 0 means 80 % of the larger of 4 MiB and the
	// size of the 3rd-percentile pack. It may not exceed the pack size.
	SmallPackBytes uint64
	// RepackCacheableOnly repacks tree packs only: data packs are kept or
	// deleted whole.
	RepackCacheableOnly bool
	// RepackUncompressed repacks every pack with uncompressed blobs
	// (version 2 repositories only).
	RepackUncompressed bool
	// IgnoreSnapshots are treated as already deleted: forget --prune --dry-run
	// plans with the snapshots it would remove.
	IgnoreSnapshots map[blob.ID]struct{}
	// Printer receives restic's progress and report lines; nil prints
	// nothing.
	Printer Printer
}

// Printer prints messages at restic's verbosity levels: P normally, V with
// -v, VV with -vv and E (errors and warnings) always.
type Printer interface {
	P(format string, args ...any)
	V(format string, args ...any)
	VV(format string, args ...any)
	E(format string, args ...any)
}

type nopPrinter struct{}

func (nopPrinter) P(string, ...any)  {}
func (nopPrinter) V(string, ...any)  {}
func (nopPrinter) VV(string, ...any) {}
func (nopPrinter) E(string, ...any)  {}

// MaxUnused is a limit on the unused data a prune leaves: a percentage of
// the used data, a number of bytes, or unlimited. The zero value is 5 %.
type MaxUnused struct {
	kind    int // 0 default (5 %), 1 percent, 2 bytes, 3 unlimited
	percent float64
	bytes   uint64
}

// MaxUnusedPercent allows p percent (0 ≤ p < 100) of the repository to stay
// unused.
func MaxUnusedPercent(p float64) (MaxUnused, error) {
	// NaN passes both comparisons below and would convert to an
	// arbitrary byte limit.
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return MaxUnused{}, errors.New("percentage for --max-unused must be a number")
	}
	if p < 0 {
		return MaxUnused{}, errors.New("percentage for --max-unused must be positive")
	}
	if p >= 100 {
		return MaxUnused{}, errors.New("percentage for --max-unused must be below 100%")
	}
	return MaxUnused{kind: 1, percent: p}, nil
}

// MaxUnusedBytes allows n bytes of unused data to stay.
func MaxUnusedBytes(n uint64) MaxUnused { return MaxUnused{kind: 2, bytes: n} }

// MaxUnusedUnlimited repacks only what must be repacked (mixed packs, trees
// to compress, small packs).
func MaxUnusedUnlimited() MaxUnused { return MaxUnused{kind: 3} }

// ParseMaxUnused parses restic's --max-unused: "unlimited", a percentage
// ("5%") or a size in bytes with an optional k/m/g/t suffix.
func ParseMaxUnused(s string) (MaxUnused, error) {
	v := strings.TrimSpace(s)
	switch {
	case v == "":
		return MaxUnused{}, fmt.Errorf("invalid value for --max-unused: %q", s)
	case v == "unlimited":
		return MaxUnusedUnlimited(), nil
	case strings.HasSuffix(v, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil {
			return MaxUnused{}, fmt.Errorf("invalid percentage %q passed for --max-unused: %v", s, err)
		}
		return MaxUnusedPercent(p)
	}
	n, err := units.ParseBytes(v)
	if err != nil {
		return MaxUnused{}, fmt.Errorf("invalid number of bytes %q for --max-unused: %v", s, err)
	}
	return MaxUnusedBytes(uint64(n)), nil
}

// limit is the unused size tolerated after the prune for used bytes in use,
// by restic's formula (p/(100-p) of the used data for a percentage).
func (m MaxUnused) limit(used uint64) uint64 {
	switch m.kind {
	case 1:
		return uint64(m.percent / (100 - m.percent) * float64(used))
	case 2:
		return m.bytes
	case 3:
		return math.MaxUint64
	}
	return uint64(5.0 / 95 * float64(used))
}

// String is the limit as restic's flag would take it.
func (m MaxUnused) String() string {
	switch m.kind {
	case 1:
		return strconv.FormatFloat(m.percent, 'f', -1, 64) + "%"
	case 2:
		return strconv.FormatUint(m.bytes, 10)
	case 3:
		return "unlimited"
	}
	return "5%"
}
