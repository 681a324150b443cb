package units

import "testing"

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"2048", 2048, false},
		{"0", 0, false},
		{"10b", 10, false},
		{"10B", 10, false},
		{"1k", 1024, false},
		{"10K", 10240, false},
		{"20m", 20 << 20, false},
		{"20M", 20 << 20, false},
		{"30g", 30 << 30, false},
		{"2T", 2 << 40, false},
		{"8388607T", 8388607 << 40, false},
		{"8388608T", 0, true}, // 2^63: overflows int64
		{"", 0, true},
		{"k", 0, true},
		{"1.5M", 0, true},
		{"-1", 0, true},
		{"10x", 0, true},
		{" 10", 0, true},
		{"1 M", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseBytes(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}
