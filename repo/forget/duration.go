package forget

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is restic's calendar duration for the keep-within options: a
// number of years, months, days and hours. It is applied with
// time.AddDate, so a month is a calendar month, not 30 days.
type Duration struct {
	Years, Months, Days, Hours int
}

// ParseDuration parses restic's duration syntax: numbers each followed by
// a unit y, m, d or h, such as "1y2m3d4h" or "36h". A unit given twice
// takes its last value; the empty string is the zero Duration. A negative
// number ("-1d") parses, but Policy.Validate refuses it, as restic does.
func ParseDuration(s string) (Duration, error) {
	var d Duration
	s = strings.TrimSpace(s)
	for s != "" {
		neg := false
		if s[0] == '-' {
			neg = true
			s = s[1:]
		}
		digits := 0
		for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
			digits++
		}
		if digits == 0 {
			return Duration{}, errors.New("no number found")
		}
		n, err := strconv.Atoi(s[:digits])
		if err != nil {
			// only overflow is possible here: restic panics, cairn says why
			return Duration{}, fmt.Errorf("number %s out of range", s[:digits])
		}
		if neg {
			n = -n
		}
		s = s[digits:]
		if s == "" {
			return Duration{}, fmt.Errorf("no unit found after number %d", n)
		}
		switch s[0] {
		case 'y':
			d.Years = n
		case 'm':
			d.Months = n
		case 'd':
			d.Days = n
		case 'h':
			d.Hours = n
		default:
			return Duration{}, fmt.Errorf("invalid unit %q found after number %d", s[0], n)
		}
		s = s[1:]
	}
	return d, nil
}

// String prints the duration the way restic does, leaving out zero units
// ("1y3d"); the zero Duration prints as "".
func (d Duration) String() string {
	var b strings.Builder
	for _, u := range []struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if u.n != 0 {
			fmt.Fprintf(&b, "%d%s", u.n, u.unit)
		}
	}
	return b.String()
}

// IsZero reports whether every unit is zero, which means "not set".
func (d Duration) IsZero() bool {
	return d == Duration{}
}

func (d Duration) negative() bool {
	return d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Hours < 0
}

// before returns the instant d before t, calendar units first, like restic.
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}
