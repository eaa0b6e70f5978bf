package configs

import (
	"encoding/json"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{"1g", GiB, false},
		{"1G", GiB, false},
		{"1GiB", GiB, false},
		{"1gb", GiB, false},
		{"512m", 512 * MiB, false},
		{"512 MiB", 512 * MiB, false},
		{"64k", 64 * KiB, false},
		{"1.5g", GiB + 512*MiB, false},
		{"0.5k", 512, false},
		{"1048576", MiB, false},
		{"100b", 100, false},
		{"2t", 2 * TiB, false},
		{"", 0, true},
		{"g", 0, true},
		{"-1g", 0, true},
		{"1zb", 0, true},
		{"1.2.3m", 0, true},
		{"99999999999t", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseByteSize(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{GiB, "1g"},
		{GiB + 512*MiB, "1536m"},
		{64 * KiB, "64k"},
		{1000, "1000"},
		{3 * TiB, "3t"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in > 0 {
			back, err := ParseByteSize(tt.want)
			if err != nil || back != tt.in {
				t.Errorf("round trip of %q = %d, %v", tt.want, back, err)
			}
		}
	}
}

func TestByteSizeJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{`{"memory": 1073741824}`, GiB, false},
		{`{"memory": "512m"}`, 512 * MiB, false},
		{`{"memory": "lots"}`, 0, true},
		{`{"memory": 1.5}`, 0, true},
	}
	for _, tt := range tests {
		var r Resources
		err := json.Unmarshal([]byte(tt.in), &r)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if r.Memory != tt.want {
			t.Errorf("%s: memory = %d, want %d", tt.in, r.Memory, tt.want)
		}
	}
	out, err := json.Marshal(Resources{Memory: GiB})
	if err != nil || string(out) != `{"cpus":0,"memory":1073741824,"pids":0}` {
		t.Errorf("marshal = %s, %v", out, err)
	}
}
