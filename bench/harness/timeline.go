package main

import (
	"bufio"
	"encoding/json"
	"os"
	"time"
)

// crashBreakdown reads berth's JSON log and splits each restart of challenge
// into its steps, as medians in ms: the client's first failed request → exit
// seen, the backoff delay, exit seen → container started (backoff + Docker
// start), container started → first passing probe, and that probe → the
// client's first 200. The client's outages pair with the log by time.
func crashBreakdown(logPath, challenge string, outages []outage) map[string]any {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var backoff, toStarted, toHealthy, toExitSeen, toServed []float64
	// around finds the client outage that contains t.
	around := func(t time.Time) (outage, bool) {
		for _, o := range outages {
			if !t.Before(o.Failed.Add(-time.Second)) && !t.After(o.OK) {
				return o, true
			}
		}
		return outage{}, false
	}
	var exited, started time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Challenge string    `json:"challenge"`
			Event     string    `json:"event"`
			Time      time.Time `json:"time"`
			To        string    `json:"to"`
			DelayMS   float64   `json:"delay_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Challenge != challenge {
			continue
		}
		switch l.Event {
		case "exited":
			exited, started = l.Time, time.Time{}
			if o, ok := around(l.Time); ok {
				toExitSeen = append(toExitSeen, ms(l.Time.Sub(o.Failed)))
			}
		case "restarting":
			if !exited.IsZero() {
				backoff = append(backoff, l.DelayMS)
			}
		case "started":
			if !exited.IsZero() {
				started = l.Time
				toStarted = append(toStarted, ms(started.Sub(exited)))
			}
		case "health_changed":
			if l.To == "healthy" && !started.IsZero() {
				toHealthy = append(toHealthy, ms(l.Time.Sub(started)))
				if o, ok := around(l.Time); ok {
					toServed = append(toServed, ms(o.OK.Sub(l.Time)))
				}
				exited, started = time.Time{}, time.Time{}
			}
		}
	}
	if len(toStarted) == 0 {
		return nil
	}
	bd := map[string]any{
		"backoff_delay":              median(backoff),
		"exit_seen_to_started":       median(toStarted),
		"started_to_first_pass":      median(toHealthy),
		"restarts_seen":              len(toStarted),
		"source":                     "berth's own log events (exited, restarting, started, health_changed); medians",
		"docker_start_approximately": round(median(toStarted)-median(backoff), 1),
	}
	if len(toExitSeen) > 0 {
		bd["first_failed_request_to_exit_seen"] = median(toExitSeen)
	}
	if len(toServed) > 0 {
		bd["first_pass_to_first_200"] = median(toServed)
	}
	return bd
}
