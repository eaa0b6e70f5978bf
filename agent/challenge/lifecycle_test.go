package challenge

import (
	"strings"
	"testing"
)

var allLifecycles = []Lifecycle{Registered, Pulling, Starting, Running, Restarting, Migrating, Stopping, Stopped, Failed}

// allowedMoves is the expected transition table, written out independently
// of the production map so that any change to it shows up here.
var allowedMoves = map[[2]Lifecycle]bool{
	{Registered, Pulling}: true, {Registered, Starting}: true, {Registered, Running}: true,
	{Registered, Restarting}: true, {Registered, Stopping}: true, {Registered, Failed}: true,

	{Pulling, Starting}: true, {Pulling, Restarting}: true, {Pulling, Failed}: true, {Pulling, Stopping}: true,

	{Starting, Running}: true, {Starting, Restarting}: true, {Starting, Failed}: true, {Starting, Stopping}: true,

	{Running, Restarting}: true, {Running, Migrating}: true, {Running, Stopping}: true, {Running, Failed}: true,

	{Restarting, Pulling}: true, {Restarting, Starting}: true, {Restarting, Running}: true,
	{Restarting, Stopping}: true, {Restarting, Failed}: true,

	{Migrating, Running}: true, {Migrating, Restarting}: true, {Migrating, Stopping}: true, {Migrating, Failed}: true,

	{Stopping, Stopped}: true, {Stopping, Failed}: true,

	{Stopped, Pulling}: true, {Stopped, Starting}: true, {Stopped, Running}: true, {Stopped, Stopping}: true,

	{Failed, Pulling}: true, {Failed, Starting}: true, {Failed, Restarting}: true, {Failed, Running}: true,
	{Failed, Stopping}: true,
}

func TestTransitionNamedCases(t *testing.T) {
	tests := []struct {
		from, to Lifecycle
		ok       bool
	}{
		{Registered, Pulling, true},
		{Pulling, Starting, true},
		{Starting, Running, true},
		{Running, Restarting, true},
		{Restarting, Starting, true},
		{Running, Migrating, true},
		{Migrating, Running, true},
		{Running, Stopping, true},
		{Stopping, Stopped, true},
		{Failed, Starting, true},
		{Failed, Restarting, true},
		{Stopping, Running, false},
		{Stopping, Starting, false},
		{Stopping, Restarting, false},
		{Stopped, Failed, false},
		{Stopped, Restarting, false},
		{Pulling, Running, false},
		{Starting, Pulling, false},
		{Migrating, Pulling, false},
		{Failed, Migrating, false},
		{Failed, Stopped, false},
		{Registered, Stopped, false},
		{Running, Pulling, false},
		{"bogus", Running, false},
		{Running, "bogus", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"->"+string(tt.to), func(t *testing.T) {
			checkTransition(t, tt.from, tt.to, tt.ok)
		})
	}
}

func TestTransitionFullMatrix(t *testing.T) {
	for _, from := range allLifecycles {
		for _, to := range allLifecycles {
			want := allowedMoves[[2]Lifecycle{from, to}]
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				checkTransition(t, from, to, want)
			})
		}
	}
}

func TestTransitionSelfRefused(t *testing.T) {
	for _, s := range allLifecycles {
		t.Run(string(s), func(t *testing.T) {
			checkTransition(t, s, s, false)
		})
	}
}

func checkTransition(tb testing.TB, from, to Lifecycle, ok bool) {
	tb.Helper()
	got, err := Transition(from, to)
	if ok {
		if err != nil {
			tb.Fatalf("Transition(%s, %s) refused: %v", from, to, err)
		}
		if got != to {
			tb.Fatalf("Transition(%s, %s) = %s, want %s", from, to, got, to)
		}
		return
	}
	if err == nil {
		tb.Fatalf("Transition(%s, %s) allowed, want refused", from, to)
	}
	if got != from {
		tb.Fatalf("refused Transition(%s, %s) returned %s, want the from state", from, to, got)
	}
	msg := err.Error()
	if !strings.Contains(msg, string(from)) || !strings.Contains(msg, string(to)) {
		tb.Fatalf("error %q does not name both %s and %s", msg, from, to)
	}
}

func TestParseLifecycle(t *testing.T) {
	tests := []struct {
		in   string
		want Lifecycle
	}{
		{"", Registered},
		{"nonsense", Registered},
		{"RUNNING", Registered},
		{" running", Registered},
	}
	for _, s := range allLifecycles {
		tests = append(tests, struct {
			in   string
			want Lifecycle
		}{string(s), s})
	}
	for _, tt := range tests {
		if got := ParseLifecycle(tt.in); got != tt.want {
			t.Errorf("ParseLifecycle(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
