package forget

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Duration
		err  string
	}{
		{"", Duration{}, ""},
		{"1y2m3d4h", Duration{Years: 1, Months: 2, Days: 3, Hours: 4}, ""},
		{"  36h ", Duration{Hours: 36}, ""},
		{"4h3d", Duration{Days: 3, Hours: 4}, ""},
		{"1d2d", Duration{Days: 2}, ""}, // the last value wins
		{"-1d", Duration{Days: -1}, ""},
		{"0d", Duration{}, ""},
		{"1", Duration{}, "no unit found after number 1"},
		{"1x", Duration{}, "invalid unit 'x' found after number 1"},
		{"d", Duration{}, "no number found"},
		{"1d 2h", Duration{}, "no number found"},
		{"--1d", Duration{}, "no number found"},
		{"99999999999999999999d", Duration{}, "out of range"},
	} {
		got, err := ParseDuration(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if s := (Duration{Years: 1, Days: 3}).String(); s != "1y3d" {
		t.Errorf("String = %q", s)
	}
}

func TestParseCount(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		err  string
	}{
		{"0", 0, ""},
		{"7", 7, ""},
		{"unlimited", Unlimited, ""},
		{"-1", 0, "use 'unlimited' instead"},
		{"-5", 0, "use 'unlimited' instead"},
		{"x", 0, "invalid syntax"},
		{"", 0, "invalid syntax"},
	} {
		got, err := ParseCount(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseCount(%q) = %d, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if FormatCount(got) != c.in {
			t.Errorf("FormatCount(%d) = %q", got, FormatCount(got))
		}
	}
}

func TestPolicyValidateAndString(t *testing.T) {
	if err := (Policy{Daily: -2}).Validate(); err == nil {
		t.Error("count -2 accepted")
	}
	if err := (Policy{Daily: Unlimited}).Validate(); err != nil {
		t.Errorf("unlimited refused: %v", err)
	}
	if err := (Policy{WithinWeekly: Duration{Days: -1}}).Validate(); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("negative duration: %v", err)
	}
	if !(Policy{}).Empty() || (Policy{Tags: [][]string{{""}}}).Empty() || (Policy{WithinYearly: Duration{Hours: 1}}).Empty() {
		t.Error("Empty is wrong")
	}
	for _, c := range []struct {
		p    Policy
		want string
	}{
		{Policy{}, "remove"},
		{Policy{Last: 2, Weekly: Unlimited}, "keep 2 latest, all weekly snapshots"},
		{Policy{WithinDaily: Duration{Days: 7}, WithinYearly: Duration{Years: 2}}, "keep daily snapshots within 7d, yearly snapshots within 2y"},
		{Policy{Hourly: 1, WithinMonthly: Duration{Months: 1}, Tags: [][]string{{"a", "b"}, {"c"}}, Within: Duration{Hours: 5}},
			"keep 1 hourly snapshots, monthly snapshots within 1m and all snapshots with tags [[a, b] [c]] and all snapshots within 5h of the newest"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
	}
}

func snap(ts string, tags ...string) *repo.Snapshot {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		panic(err)
	}
	return &repo.Snapshot{Time: t, Hostname: "h", Paths: []string{"/p"}, Tags: tags}
}

func times(list []*repo.Snapshot) []string {
	var out []string
	for _, sn := range list {
		out = append(out, sn.Time.Format(time.RFC3339))
	}
	return out
}

var now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// The oldest snapshot is kept while a count is left, with an "oldest"
// reason, even in a period already kept.
func TestApplyKeepsOldestWhileCountsLast(t *testing.T) {
	list := []*repo.Snapshot{
		snap("2024-05-01T08:00:00Z"),
		snap("2024-05-01T10:00:00Z"),
		snap("2024-05-02T10:00:00Z"),
	}
	res := Apply(list, Policy{Daily: 5, WithinMonthly: Duration{Years: 1}}, now)
	if got := times(res.Keep); !reflect.DeepEqual(got, []string{"2024-05-02T10:00:00Z", "2024-05-01T10:00:00Z", "2024-05-01T08:00:00Z"}) {
		t.Fatalf("kept %v", got)
	}
	want := [][]string{
		{"daily snapshot", "monthly within 1y"},
		{"daily snapshot"},
		{"oldest daily snapshot", "oldest monthly within 1y"},
	}
	for i, r := range res.Reasons {
		if !reflect.DeepEqual(r.Matches, want[i]) {
			t.Errorf("reason %d = %q, want %q", i, r.Matches, want[i])
		}
	}
	// With the count used up the oldest goes.
	res = Apply(list, Policy{Daily: 1}, now)
	if got := times(res.Remove); !reflect.DeepEqual(got, []string{"2024-05-01T10:00:00Z", "2024-05-01T08:00:00Z"}) {
		t.Errorf("removed %v", got)
	}
}

// Periods are taken in the zone each snapshot recorded, not in UTC.
func TestApplyPeriodsInSnapshotZone(t *testing.T) {
	list := []*repo.Snapshot{
		snap("2024-05-01T23:30:00+02:00"), // 21:30 UTC, May 1 either way
		snap("2024-05-02T00:30:00+02:00"), // May 1 in UTC, May 2 where taken
	}
	res := Apply(list, Policy{Daily: 2}, now)
	if len(res.Keep) != 2 || res.Reasons[1].Matches[0] != "daily snapshot" {
		t.Errorf("kept %v %v", times(res.Keep), res.Reasons)
	}
}

// keep-within counts back from the newest snapshot that is not in the
// future; with all in the future every snapshot is within.
func TestApplyWithinIgnoresFutureSnapshots(t *testing.T) {
	list := []*repo.Snapshot{
		snap("2024-05-01T00:00:00Z"),
		snap("2024-05-05T00:00:00Z"),
		snap("2099-01-01T00:00:00Z"),
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	res := Apply(list, Policy{Within: Duration{Days: 2}}, now)
	if got := times(res.Keep); !reflect.DeepEqual(got, []string{"2099-01-01T00:00:00Z", "2024-05-05T00:00:00Z"}) {
		t.Errorf("kept %v", got)
	}
	res = Apply(list, Policy{Within: Duration{Days: 2}}, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	if len(res.Remove) != 0 {
		t.Errorf("all in the future, removed %v", times(res.Remove))
	}
}

func TestApplyTagsAndEmptyPolicy(t *testing.T) {
	list := []*repo.Snapshot{
		snap("2024-05-01T00:00:00Z", "a", "b"),
		snap("2024-05-02T00:00:00Z", "a"),
		snap("2024-05-03T00:00:00Z"),
	}
	res := Apply(list, Policy{Tags: [][]string{{"a", "b"}, {""}}}, now)
	if got := times(res.Keep); !reflect.DeepEqual(got, []string{"2024-05-03T00:00:00Z", "2024-05-01T00:00:00Z"}) {
		t.Errorf("kept %v", got)
	}
	if m := res.Reasons[0].Matches; !reflect.DeepEqual(m, []string{"has tags []"}) {
		t.Errorf("reason %q", m)
	}
	if m := res.Reasons[1].Matches; !reflect.DeepEqual(m, []string{"has tags [a, b]"}) {
		t.Errorf("reason %q", m)
	}
	if res := Apply(list, Policy{}, now); len(res.Keep) != 0 || len(res.Remove) != 3 {
		t.Errorf("empty policy kept %v", times(res.Keep))
	}
	if res := Apply(nil, Policy{Last: 1}, now); res.Keep != nil || res.Remove != nil {
		t.Errorf("no snapshots: %+v", res)
	}
	// the input order is left alone
	if list[0].Time.Day() != 1 {
		t.Error("Apply reordered its input")
	}
}

func TestGroup(t *testing.T) {
	a := &repo.Snapshot{Hostname: "h1", Paths: []string{"/b", "/a"}, Tags: []string{"y", "x"}}
	b := &repo.Snapshot{Hostname: "h1", Paths: []string{"/a", "/b"}, Tags: []string{"x", "y"}}
	c := &repo.Snapshot{Hostname: "h0", Paths: []string{"/a", "/b"}}
	groups := Group([]*repo.Snapshot{a, b, c}, GroupBy{Host: true, Paths: true, Tags: true})
	if len(groups) != 2 {
		t.Fatalf("%d groups", len(groups))
	}
	if k := groups[0].Key; k.Hostname != "h0" || k.Tags != nil || !reflect.DeepEqual(k.Paths, []string{"/a", "/b"}) {
		t.Errorf("first key %+v", k)
	}
	if k := groups[1].Key; k.String() != "host h1, path [/a /b], tags [x y]" || len(groups[1].Snapshots) != 2 {
		t.Errorf("second group %v with %d", k, len(groups[1].Snapshots))
	}
	if a.Paths[0] != "/b" || a.Tags[0] != "y" {
		t.Error("Group modified a snapshot")
	}
	if g := Group([]*repo.Snapshot{a, b, c}, GroupBy{}); len(g) != 1 || g[0].Key.String() != "" {
		t.Errorf("no grouping: %v", g)
	}
	for _, s := range []string{"host,paths", "tags", "", "host,paths,tags"} {
		g, err := ParseGroupBy(s)
		if err != nil || g.String() != s {
			t.Errorf("ParseGroupBy(%q) = %v, %v", s, g, err)
		}
	}
	if g, err := ParseGroupBy("hosts,path,tag"); err != nil || g != (GroupBy{true, true, true}) {
		t.Errorf("plural/singular: %v %v", g, err)
	}
	if _, err := ParseGroupBy("host,owner"); err == nil || err.Error() != `unknown grouping option: "owner"` {
		t.Errorf("bad option: %v", err)
	}
}

// Weeks are ISO weeks: Monday 2024-12-30 and Wednesday 2025-01-01 share
// week 2025-W01, while Sunday 2021-01-03 still belongs to 2020-W53.
func TestApplyISOWeeks(t *testing.T) {
	list := []*repo.Snapshot{
		snap("2021-01-03T12:00:00Z"),
		snap("2021-01-04T12:00:00Z"),
		snap("2024-12-29T12:00:00Z"),
		snap("2024-12-30T12:00:00Z"),
		snap("2025-01-01T12:00:00Z"),
	}
	res := Apply(list, Policy{Weekly: 10}, now)
	want := []string{"2025-01-01T12:00:00Z", "2024-12-29T12:00:00Z", "2021-01-04T12:00:00Z", "2021-01-03T12:00:00Z"}
	if got := times(res.Keep); !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if got := times(res.Remove); !reflect.DeepEqual(got, []string{"2024-12-30T12:00:00Z"}) {
		t.Errorf("removed %v", got)
	}
}
