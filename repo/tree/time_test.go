package tree

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// appendTime (with its own calendar arithmetic) must write exactly what
// restic writes: json.Marshal of the clamped time, or fail where it fails.
func TestAppendTimeMatchesMarshalJSON(t *testing.T) {
	zones := []*time.Location{time.UTC, time.Local, nyc, half,
		time.FixedZone("", -30), time.FixedZone("", 30), time.FixedZone("", 59*60+59),
		time.FixedZone("", -(23*3600 + 59*60 + 59)), time.FixedZone("", 24*3600), time.FixedZone("", -24*3600+1),
		time.FixedZone("", 99*3600), time.FixedZone("", 100*3600), time.FixedZone("", 1<<40)}
	var times []time.Time
	for _, d := range [][3]int{{0, 1, 1}, {0, 2, 29}, {0, 3, 1}, {1, 1, 1}, {1600, 2, 29}, {1700, 2, 28}, {1700, 3, 1},
		{1900, 3, 1}, {1969, 12, 31}, {1970, 1, 1}, {2000, 2, 29}, {2024, 12, 31}, {9999, 12, 31}, {10000, 1, 1}, {-1, 12, 31}} {
		for _, clock := range [][2]int{{0, 0}, {23*3600 + 59*60 + 59, 999999999}, {12 * 3600, 500}} {
			times = append(times, time.Date(d[0], time.Month(d[1]), d[2], 0, 0, clock[0], clock[1], time.UTC))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 6000 {
		times = append(times,
			time.Unix(rng.Int64N(unixYear10000-unixYear0)+unixYear0, rng.Int64N(1e9)),
			time.Unix(rng.Int64N(4e9)-2e9, rng.Int64N(1e9)/1000*1000),
			time.Unix(int64(rng.Uint64()), rng.Int64N(1e9)))
	}
	times = append(times, time.Time{}, time.Unix(1<<63-1, 999999999), time.Unix(-1<<63, 0))
	for _, tm := range times {
		for _, z := range zones {
			tz := tm.In(z)
			got, gotErr := appendTime(nil, tz)
			want, wantErr := json.Marshal(refFixTime(tz))
			if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("%v (unix %d, offset %v): got %s (%v), want %s (%v)", tz, tz.Unix(), z, got, gotErr, want, wantErr)
			}
		}
	}
}
