package forget

import (
	"fmt"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// Reason says why a snapshot is kept: restic's "matches", such as
// "daily snapshot", "oldest monthly snapshot", "within 1y",
// "weekly within 2m" or "has tags [a, b]".
type Reason struct {
	Snapshot *repo.Snapshot
	Matches  []string
}

// Result is the outcome of Apply. Keep and Remove are ordered newest
// first; Reasons[i] belongs to Keep[i].
type Result struct {
	Keep    []*repo.Snapshot
	Remove  []*repo.Snapshot
	Reasons []Reason
}

// bucket keeps the newest snapshot per period (or, for Last, every
// snapshot) while its count lasts; last is the period of the previous kept
// snapshot.
type bucket struct {
	count  int
	period func(t time.Time, nr int) int
	last   int
	reason string
}

// windowBucket keeps the newest snapshot per period inside a window back
// from the newest snapshot.
type windowBucket struct {
	within Duration
	period func(t time.Time, nr int) int
	last   int
	reason string
}

// The periods are computed in each snapshot's own recorded time zone, as
// restic does: a snapshot made at 23:30+02:00 belongs to that day even
// when it is already the next day in UTC.
func everySnapshot(_ time.Time, nr int) int { return nr }
func hour(t time.Time, _ int) int {
	return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
}
func day(t time.Time, _ int) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }
func week(t time.Time, _ int) int {
	y, w := t.ISOWeek()
	return y*100 + w
}
func month(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }
func year(t time.Time, _ int) int  { return t.Year() }

// Apply decides which of snapshots policy p keeps. It applies to one group
// (see Group); to apply a policy per host and paths like restic's forget,
// call it once per group.
//
// now matters only for the keep-within rules: they are measured from the
// newest snapshot taken before now, so a snapshot with a clock far in the
// future cannot push the window forward. Snapshots with equal times keep
// their order in snapshots. The input slice is not modified.
//
// Applying an empty policy removes every snapshot.
func Apply(snapshots []*repo.Snapshot, p Policy, now time.Time) Result {
	list := slices.Clone(snapshots)
	slices.SortStableFunc(list, func(a, b *repo.Snapshot) int {
		// newest first
		switch {
		case a.Time.After(b.Time):
			return -1
		case b.Time.After(a.Time):
			return 1
		}
		return 0
	})
	var res Result
	if len(list) == 0 {
		return res
	}

	buckets := [...]bucket{
		{p.Last, everySnapshot, -1, "last snapshot"},
		{p.Hourly, hour, -1, "hourly snapshot"},
		{p.Daily, day, -1, "daily snapshot"},
		{p.Weekly, week, -1, "weekly snapshot"},
		{p.Monthly, month, -1, "monthly snapshot"},
		{p.Yearly, year, -1, "yearly snapshot"},
	}
	windows := [...]windowBucket{
		{p.WithinHourly, hour, -1, "hourly within"},
		{p.WithinDaily, day, -1, "daily within"},
		{p.WithinWeekly, week, -1, "weekly within"},
		{p.WithinMonthly, month, -1, "monthly within"},
		{p.WithinYearly, year, -1, "yearly within"},
	}

	latest := newestBefore(list, now)
	oldest := len(list) - 1
	for nr, sn := range list {
		var matches []string

		// Tags are not counted: every snapshot with a listed tag set stays.
		for _, tags := range p.Tags {
			if hasTags(sn, tags) {
				matches = append(matches, "has tags "+formatTagList(tags))
			}
		}

		if !p.Within.IsZero() && sn.Time.After(p.Within.before(latest)) {
			matches = append(matches, fmt.Sprintf("within %s", p.Within))
		}

		for i := range buckets {
			b := &buckets[i]
			if b.count <= 0 && b.count != Unlimited {
				continue // used up, or not set
			}
			val := b.period(sn.Time, nr)
			// The oldest snapshot is kept while a count is left even in a
			// period already kept: that keeps the longest history.
			if val == b.last && nr != oldest {
				continue
			}
			reason := b.reason
			if val == b.last {
				reason = "oldest " + reason
			}
			b.last = val
			if b.count > 0 {
				b.count--
			}
			matches = append(matches, reason)
		}

		for i := range windows {
			w := &windows[i]
			if w.within.IsZero() || !sn.Time.After(w.within.before(latest)) {
				continue
			}
			val := w.period(sn.Time, nr)
			if val == w.last && nr != oldest {
				continue
			}
			reason := w.reason
			if val == w.last {
				reason = "oldest " + reason
			}
			w.last = val
			matches = append(matches, fmt.Sprintf("%s %s", reason, w.within))
		}

		if len(matches) > 0 {
			res.Keep = append(res.Keep, sn)
			res.Reasons = append(res.Reasons, Reason{Snapshot: sn, Matches: matches})
		} else {
			res.Remove = append(res.Remove, sn)
		}
	}
	return res
}

// newestBefore returns the time of the newest snapshot before now, or the
// zero time if all are in the future. Then, as in restic, the keep-within
// windows reach back from year 1 and every snapshot lies after their start,
// so all are kept.
func newestBefore(list []*repo.Snapshot, now time.Time) time.Time {
	var latest time.Time
	for _, sn := range list {
		if sn.Time.After(latest) && sn.Time.Before(now) {
			latest = sn.Time
		}
	}
	return latest
}

// hasTags reports whether sn has every tag of l; an empty tag in l matches
// a snapshot without tags. This is restic's rule for both --tag and
// --keep-tag.
func hasTags(sn *repo.Snapshot, l []string) bool {
	for _, tag := range l {
		if tag == "" && len(sn.Tags) == 0 {
			return true
		}
		if !slices.Contains(sn.Tags, tag) {
			return false
		}
	}
	return true
}
