package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// counter is the work a challenge would lose in a crash: items counted in
// memory, exported and imported as {"items":N} at /items/state. Its export
// misbehaves on request (POST /admin/export?mode=…) and its first
// IMPORT_FAIL imports answer 500, so berth's refusals and retries can be
// watched.
type counter struct {
	mu          sync.Mutex
	items       int
	exportMode  string // "", redirect, error, huge, slow
	importFails int
}

// hugeExport is what mode huge answers: more than berth accepts.
const hugeExport = 100 << 20

// slowExport is how long mode slow takes to answer.
const slowExport = 30 * time.Second

func (k *counter) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) { k.answer(w) })
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.items++
		k.mu.Unlock()
		k.answer(w)
	})
	mux.HandleFunc("GET /items/state", k.export)
	mux.HandleFunc("POST /items/state", k.importState)
	mux.HandleFunc("POST /admin/export", func(w http.ResponseWriter, r *http.Request) {
		mode := r.URL.Query().Get("mode")
		switch mode {
		case "ok", "redirect", "error", "huge", "slow":
		default:
			http.Error(w, "mode must be ok, redirect, error, huge or slow", http.StatusBadRequest)
			return
		}
		k.mu.Lock()
		k.exportMode = mode
		k.mu.Unlock()
		k.answer(w)
	})
}

func (k *counter) answer(w http.ResponseWriter) {
	k.mu.Lock()
	n := k.items
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int{"items": n})
}

func (k *counter) export(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	mode := k.exportMode
	k.mu.Unlock()
	switch mode {
	case "redirect":
		http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
	case "error":
		http.Error(w, "export broken", http.StatusInternalServerError)
	case "huge":
		chunk := make([]byte, 1<<20)
		for range hugeExport / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	case "slow":
		select {
		case <-time.After(slowExport):
			k.answer(w)
		case <-r.Context().Done():
		}
	default:
		k.answer(w)
	}
}

func (k *counter) importState(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.importFails > 0 {
		k.importFails--
		http.Error(w, "import not possible yet", http.StatusInternalServerError)
		return
	}
	var in struct {
		Items *int `json:"items"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(body, &in) != nil || in.Items == nil {
		http.Error(w, "want {\"items\":N}", http.StatusBadRequest)
		return
	}
	k.items = *in.Items
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"items":`+strconv.Itoa(k.items)+`}`)
}
