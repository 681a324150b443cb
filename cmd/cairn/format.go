package main

import (
	"fmt"
	"strconv"
	"time"
	"unicode"

	"golang.org/x/text/width"
)

// timeFormat is how restic prints times in tables and messages.
const timeFormat = "2006-01-02 15:04:05"

// formatBytes renders a byte count in binary units with three decimals,
// the way restic does ("12 B", "1.500 KiB", "3.000 GiB").
func formatBytes(c uint64) string {
	b := float64(c)
	switch {
	case c >= 1<<40:
		return fmt.Sprintf("%.3f TiB", b/(1<<40))
	case c >= 1<<30:
		return fmt.Sprintf("%.3f GiB", b/(1<<30))
	case c >= 1<<20:
		return fmt.Sprintf("%.3f MiB", b/(1<<20))
	case c >= 1<<10:
		return fmt.Sprintf("%.3f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%d B", c)
}

// formatSeconds renders a duration as M:SS, or H:MM:SS from an hour on.
func formatSeconds(sec uint64) string {
	h, m, s := sec/3600, sec/60%60, sec%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return formatSeconds(uint64(d / time.Second))
}

// formatPercent renders num/den as a percentage with two decimals, capped
// at 100 %; "" when den is zero.
func formatPercent(num, den uint64) string {
	if den == 0 {
		return ""
	}
	p := 100 * float64(num) / float64(den)
	if p > 100 {
		p = 100
	}
	return fmt.Sprintf("%3.2f%%", p)
}

// quote makes a path safe to print on a terminal: one with control or
// non-printable characters or invalid UTF-8 is printed Go-quoted.
func quote(s string) string {
	for _, r := range s {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// displayWidth is the number of terminal cells s takes: East Asian wide
// characters take two, combining marks none.
func displayWidth(s string) int {
	w := 0
	for _, r := range s {
		switch width.LookupRune(r).Kind() {
		case width.EastAsianWide, width.EastAsianFullwidth:
			w += 2
		case width.EastAsianNarrow, width.EastAsianHalfwidth, width.EastAsianAmbiguous, width.Neutral:
			w++
		}
	}
	return w
}
