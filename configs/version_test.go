package configs

import "testing"

func TestIsExactVersion(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"1.4.2", true},
		{"v1.4.2", true},
		{"latest", true},
		{"1.4", true},
		{"1.4.2-rc.1", true},
		{"main_2024", true},
		{"^1.4", false},
		{"~1.4.2", false},
		{">=1.2 <2", false},
		{">1", false},
		{"<2", false},
		{"=1.4.2", false},
		{"*", false},
		{"1.*", false},
		{"1.x", false},
		{"1.X", false},
		{"v1.x.x", false},
		{"1.2 || 2.x", false},
		{"1.2, 1.3", false},
		{"1.4 2", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsExactVersion(tt.v); got != tt.want {
			t.Errorf("IsExactVersion(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		v  string
		ok bool
	}{
		{"1.4.2", true},
		{"latest", true},
		{"^1.4", true},
		{"~1.4.2", true},
		{">=1.2 <2", true},
		{"1.x", true},
		{"", false},
		{"   ", false},
		{">>1", false},
		{"1.0.0+build", false}, // exact, but + is not allowed in a tag
		{"-rc", false},
	}
	for _, tt := range tests {
		if msg := checkVersion(tt.v); (msg == "") != tt.ok {
			t.Errorf("checkVersion(%q) = %q, want ok=%v", tt.v, msg, tt.ok)
		}
	}
}
