package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWebSocketRowAndTargetComeFromTheRunsFigures(t *testing.T) {
	r := &results{WebSocketDrops: &wsDrops{Subjects: map[string]*wsSubject{
		"berth":               {Sockets: 20, Dropped: 0, OnOldVersion: 20, NewSocketVersion: "1.1.0"},
		"stop_first_recreate": {Sockets: 20, Dropped: 20, NewSocketVersion: "1.1.0"},
	}}}
	// The figures survive bench/results.json, which -render reads back.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	back.Targets = evaluate(&back)
	md := report(&back)
	if !strings.Contains(md, "| 0 of 20 (blue-green swap) | 20 of 20 (stop-first recreate) |") {
		t.Errorf("report lacks the websocket row:\n%s", md)
	}
	tg := wsTarget(&back)
	if tg.Met == nil || !*tg.Met {
		t.Errorf("target %+v, want met", tg)
	}

	r.WebSocketDrops.Subjects["berth"].Dropped = 1
	if tg := wsTarget(r); tg.Met == nil || *tg.Met {
		t.Errorf("target with a dropped socket %+v, want missed", tg)
	}
	r.WebSocketDrops.Subjects["berth"].Error = "berth did not start"
	if tg := wsTarget(r); tg.Met != nil {
		t.Errorf("target of a failed measurement %+v, want not measured", tg)
	}
	if row := wsRow(r); !strings.Contains(row, "| not measured (blue-green swap)") {
		t.Errorf("row of a failed measurement: %s", row)
	}
	if tg := wsTarget(&results{}); tg.Met != nil || wsRow(&results{}) != "" {
		t.Errorf("a run without the phase: target %+v, row %q", tg, wsRow(&results{}))
	}
}
