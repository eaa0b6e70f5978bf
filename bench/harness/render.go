package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// rerender writes the report again from a results file, so a change to the
// report's wording needs no new measurements. Targets are evaluated again
// from the stored figures.
func rerender(resultsPath, mdPath string) error {
	b, err := os.ReadFile(resultsPath)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", resultsPath, err)
	}
	// JSON gives back generic maps; the report reads these typed.
	if err := retype(r.CrashOutageMS, "samples", new(map[string][]float64)); err != nil {
		return fmt.Errorf("%s: crash_outage_ms.samples: %w", resultsPath, err)
	}
	for _, k := range []string{"berth_blue_green_detail", "stop_first_recreate_detail"} {
		if err := retype(r.SwapFailed, k, new(loadResult)); err != nil {
			return fmt.Errorf("%s: swap_failed_requests.%s: %w", resultsPath, k, err)
		}
	}
	r.Targets = evaluate(&r)
	return os.WriteFile(mdPath, []byte(report(&r)), 0o644)
}

// retype replaces m[key] with its value decoded into *into's type.
func retype[T any](m map[string]any, key string, into *T) error {
	v, ok := m[key]
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return err
	}
	m[key] = *into
	return nil
}
