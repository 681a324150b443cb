package forget

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Unlimited as a count keeps every snapshot of that kind: every snapshot
// for Last, the newest of every hour for Hourly, and so on. It is what
// restic's "unlimited" (and, before 0.17, -1) means.
const Unlimited = -1

// Policy is a retention policy. The zero value keeps nothing; see Empty.
//
// A snapshot is kept if any rule keeps it. The counts keep the newest
// snapshot of each of the n most recent periods that have one (Last
// counts snapshots, not periods); if fewer periods exist, the oldest
// snapshot is kept in addition. The Within durations are measured back from
// the newest snapshot that is not in the future.
type Policy struct {
	Last    int // the n newest snapshots
	Hourly  int // the newest snapshot of each of the last n hours that have one
	Daily   int // … days
	Weekly  int // … ISO weeks
	Monthly int // … calendar months
	Yearly  int // … calendar years

	Within        Duration // every snapshot within this of the newest
	WithinHourly  Duration // the newest of each hour within this of the newest
	WithinDaily   Duration // … of each day
	WithinWeekly  Duration // … of each ISO week
	WithinMonthly Duration // … of each month
	WithinYearly  Duration // … of each year

	// Tags keeps every snapshot that has all tags of at least one list. A
	// list holding the empty tag matches snapshots without tags.
	Tags [][]string
}

// ErrNegativeCount is restic 0.19's refusal of a negative count.
var ErrNegativeCount = errors.New("negative values not allowed, use 'unlimited' instead")

// ParseCount parses a keep-* count: a non-negative number or "unlimited".
func ParseCount(s string) (int, error) {
	if s == "unlimited" {
		return Unlimited, nil
	}
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, ErrNegativeCount
	}
	return int(n), nil
}

// FormatCount is the inverse of ParseCount.
func FormatCount(n int) string {
	if n == Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// ParseTags splits a keep-tag value "a,b" into a tag list, trimming blanks
// around each tag, like restic.
func ParseTags(s string) []string {
	var l []string
	for _, t := range strings.Split(s, ",") {
		l = append(l, strings.TrimSpace(t))
	}
	return l
}

// Validate refuses counts below Unlimited and negative durations with
// restic's messages.
func (p Policy) Validate() error {
	for _, n := range p.counts() {
		if n < Unlimited {
			return errors.New("negative values other than -1 are not allowed for --keep-*")
		}
	}
	for _, d := range []Duration{p.Within, p.WithinHourly, p.WithinDaily, p.WithinWeekly, p.WithinMonthly, p.WithinYearly} {
		if d.negative() {
			return errors.New("durations containing negative values are not allowed for --keep-within*")
		}
	}
	return nil
}

func (p Policy) counts() [6]int {
	return [6]int{p.Last, p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly}
}

// Empty reports whether no rule is set. Applying an empty policy removes
// every snapshot, which callers should refuse unless told otherwise.
func (p Policy) Empty() bool {
	if len(p.Tags) != 0 || p.counts() != [6]int{} {
		return false
	}
	for _, d := range []Duration{p.Within, p.WithinHourly, p.WithinDaily, p.WithinWeekly, p.WithinMonthly, p.WithinYearly} {
		if !d.IsZero() {
			return false
		}
	}
	return true
}

// String describes the policy in restic's words, as `forget` prints it
// after "Applying Policy: ".
func (p Policy) String() string {
	var counts, within []string
	for i, name := range []string{"latest", "hourly", "daily", "weekly", "monthly", "yearly"} {
		switch n := p.counts()[i]; {
		case n > 0:
			counts = append(counts, fmt.Sprintf("%d %s", n, name))
		case n == Unlimited:
			counts = append(counts, "all "+name)
		}
	}
	for _, w := range []struct {
		d    Duration
		name string
	}{{p.WithinHourly, "hourly"}, {p.WithinDaily, "daily"}, {p.WithinWeekly, "weekly"}, {p.WithinMonthly, "monthly"}, {p.WithinYearly, "yearly"}} {
		if !w.d.IsZero() {
			within = append(within, fmt.Sprintf("%s snapshots within %s", w.name, w.d))
		}
	}
	var s string
	if len(counts) > 0 {
		s = strings.Join(counts, ", ") + " snapshots"
	}
	if len(within) > 0 {
		if s != "" {
			s += ", "
		}
		s += strings.Join(within, ", ")
	}
	if len(p.Tags) > 0 {
		if s != "" {
			s += " and "
		}
		s += "all snapshots with tags " + formatTagLists(p.Tags)
	}
	if !p.Within.IsZero() {
		if s != "" {
			s += " and "
		}
		s += fmt.Sprintf("all snapshots within %s of the newest", p.Within)
	}
	if s == "" {
		return "remove"
	}
	return "keep " + s
}

// formatTagList prints one tag list as restic does: "[a, b]".
func formatTagList(l []string) string {
	return "[" + strings.Join(l, ", ") + "]"
}

// formatTagLists prints tag lists as restic does: "[[a, b] [c]]".
func formatTagLists(ls [][]string) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = formatTagList(l)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
