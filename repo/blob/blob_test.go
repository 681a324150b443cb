package blob

import (
	"slices"
	"sort"
	"testing"
)

func TestIDCompareMatchesHexOrder(t *testing.T) {
	var ids []ID
	for i := range 64 {
		ids = append(ids, Hash([]byte{byte(i)}))
	}
	a, b := ID{0x01, 0xff}, ID{0x02, 0x00}
	ids = append(ids, a, b, ID{})
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
		t.Fatalf("Compare: %d %d %d", a.Compare(b), b.Compare(a), a.Compare(a))
	}
	byHex := slices.Clone(ids)
	sort.Slice(byHex, func(i, j int) bool { return byHex[i].String() < byHex[j].String() })
	slices.SortFunc(ids, ID.Compare)
	if !slices.Equal(ids, byHex) {
		t.Fatal("sorting with Compare differs from sorting the hex forms")
	}
}
