package main

import (
	"bufio"
	"encoding/json"
	"os"
	"time"

	life "berth/agent/challenge"
)

// crashBreakdown reads berth's JSON log and splits each restart of challenge
// into steps, as medians in ms: the client's first failed request → container
// started again (the exit reaching berth, the backoff, Docker's start),
// container started → first passing probe, and that probe → the client's
// first 200; and the backoff delay drawn. The client's outages pair with the
// log by time.
func crashBreakdown(logPath, challenge string, outages []outage) map[string]any {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var backoff, toStarted, toHealthy, toServed []float64
	// around finds the client outage that contains t.
	around := func(t time.Time) (outage, bool) {
		for _, o := range outages {
			if !t.Before(o.Failed) && !t.After(o.OK) {
				return o, true
			}
		}
		return outage{}, false
	}
	var started time.Time
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
		o, inOutage := around(l.Time)
		if !inOutage {
			continue
		}
		switch {
		case l.Event == life.EventRestarting:
			backoff = append(backoff, l.DelayMS)
		case l.Event == life.EventStarted:
			started = l.Time
			toStarted = append(toStarted, ms(started.Sub(o.Failed)))
		case l.Event == life.EventHealthChanged && l.To == string(life.HealthHealthy) && !started.IsZero():
			toHealthy = append(toHealthy, ms(l.Time.Sub(started)))
			toServed = append(toServed, ms(o.OK.Sub(l.Time)))
			started = time.Time{}
		}
	}
	if len(toStarted) == 0 {
		return nil
	}
	return map[string]any{
		"backoff_delay":                   median(backoff),
		"first_failed_request_to_started": median(toStarted),
		"started_to_first_pass":           median(toHealthy),
		"first_pass_to_first_200":         median(toServed),
		"restarts_seen":                   len(toStarted),
		"source":                          "berth's own log events (restarting, started, health_changed) against the client's outages; medians",
	}
}
