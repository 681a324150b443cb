package forget_test

import (
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/forget"
)

// Keep one snapshot per day for three days and one per month for two
// months, for each host and set of paths, like
// `restic forget --keep-daily 3 --keep-monthly 2`.
func Example() {
	start := time.Date(2024, 1, 30, 12, 0, 0, 0, time.UTC)
	var snapshots []*repo.Snapshot
	for i := range 6 { // one snapshot a day, Jan 30 to Feb 4
		snapshots = append(snapshots, &repo.Snapshot{
			Time:     start.AddDate(0, 0, i),
			Hostname: "web1",
			Paths:    []string{"/srv"},
		})
	}
	within, err := forget.ParseDuration("2d")
	if err != nil {
		fmt.Println(err)
		return
	}
	policy := forget.Policy{Daily: 3, Monthly: 2, Within: within}
	fmt.Println(policy)

	for _, g := range forget.Group(snapshots, forget.DefaultGroupBy) {
		res := forget.Apply(g.Snapshots, policy, time.Now())
		fmt.Println("group:", g.Key)
		for _, r := range res.Reasons {
			fmt.Println("keep", r.Snapshot.Time.Format("2006-01-02"), r.Matches)
		}
		for _, sn := range res.Remove {
			fmt.Println("remove", sn.Time.Format("2006-01-02"))
		}
	}
	// Output:
	// keep 3 daily, 2 monthly snapshots and all snapshots within 2d of the newest
	// group: host web1, path [/srv]
	// keep 2024-02-04 [within 2d daily snapshot monthly snapshot]
	// keep 2024-02-03 [within 2d daily snapshot]
	// keep 2024-02-02 [daily snapshot]
	// keep 2024-01-31 [monthly snapshot]
	// remove 2024-02-01
	// remove 2024-01-30
}
