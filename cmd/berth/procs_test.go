package main

import "testing"

func TestAgentProcsTakesHalfTheCPUsUnlessGOMAXPROCSIsSet(t *testing.T) {
	for _, tc := range []struct {
		env      string
		def      int
		want     int
		override bool
	}{
		{"", 1, 1, true},
		{"", 2, 1, true},
		{"", 3, 1, true},
		{"", 16, 8, true},
		{"4", 2, 4, false},
		{"junk", 8, 4, true}, // the runtime ignores it too
		{"0", 8, 4, true},
	} {
		got, override := agentProcs(func(k string) string {
			if k == "GOMAXPROCS" {
				return tc.env
			}
			return ""
		}, tc.def)
		if got != tc.want || override != tc.override {
			t.Errorf("GOMAXPROCS=%q, runtime default %d: %d (set %v), want %d (set %v)", tc.env, tc.def, got, override, tc.want, tc.override)
		}
	}
}
