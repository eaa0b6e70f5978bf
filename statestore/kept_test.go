package statestore

import (
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// A runtime record written before kept containers were recorded still
// decodes, and the kept container round-trips.
func TestRuntimeKeptContainer(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	old := []byte(`{"name":"c","lifecycle":"running","health":"healthy","active_slot":"b","slots":{"b":{"container_id":"x"}},"version":"1.1.0"}`)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(runtimeKey("c"), old) }); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetRuntime("c")
	if err != nil || !ok || got.Kept != nil || got.Slots["b"].ContainerID != "x" {
		t.Fatalf("old record: %+v %v %v", got, ok, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got.Kept = &KeptContainer{ContainerID: "prev", RemoveAt: at}
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutRuntime(got) })
	again, _, err := s.GetRuntime("c")
	if err != nil || again.Kept == nil || again.Kept.ContainerID != "prev" || !again.Kept.RemoveAt.Equal(at) {
		t.Fatalf("kept container after a round trip: %+v %v", again.Kept, err)
	}
}

func TestListSwaps(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for _, name := range []string{"b", "a"} {
		p := SwapPlan{ID: "s-" + name, Challenge: name, ToContainerID: "ct-" + name}
		mustUpdate(t, s, func(tx *Tx) error { return tx.PutSwap(p) })
	}
	plans, err := s.ListSwaps()
	if err != nil || len(plans) != 2 || plans[0].ToContainerID != "ct-a" || plans[1].ToContainerID != "ct-b" {
		t.Fatalf("ListSwaps = %+v, %v", plans, err)
	}
}
