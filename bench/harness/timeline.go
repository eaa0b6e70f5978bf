package main

import (
	"bufio"
	"encoding/json"
	"os"
	"time"
)

// crashBreakdown reads berth's JSON log and splits each restart of challenge
// into its steps, as medians in ms: exit seen → restart scheduled delay
// (backoff), exit seen → container started (backoff + Docker start), and
// container started → first passing probe.
func crashBreakdown(logPath, challenge string) map[string]any {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var backoff, toStarted, toHealthy []float64
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
				exited, started = time.Time{}, time.Time{}
			}
		}
	}
	if len(toStarted) == 0 {
		return nil
	}
	return map[string]any{
		"backoff_delay":              median(backoff),
		"exit_seen_to_started":       median(toStarted),
		"started_to_first_pass":      median(toHealthy),
		"restarts_seen":              len(toStarted),
		"source":                     "berth's own log events (exited, restarting, started, health_changed); medians",
		"docker_start_approximately": round(median(toStarted)-median(backoff), 1),
	}
}
