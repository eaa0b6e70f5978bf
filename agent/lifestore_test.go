package agent

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"berth/agent/challenge"
	"berth/statestore"
)

// fill sets every field of the struct v points to a non-zero value, so a
// conversion that forgets a field shows up as a difference.
func fill(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(int64(1_700_000_000+*n), 0).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fill(t, v.Field(i), n)
		}
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(t, s.Index(0), n)
		fill(t, s.Index(1), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		val := reflect.New(v.Type().Elem()).Elem()
		fill(t, val, n)
		m.SetMapIndex(reflect.ValueOf("a"), val)
		v.Set(m)
	default:
		t.Fatalf("fill: unhandled kind %s", v.Kind())
	}
}

func TestRuntimeRecordConversionKeepsEveryField(t *testing.T) {
	var rec challenge.Record
	n := 0
	fill(t, reflect.ValueOf(&rec).Elem(), &n)
	stored := toRuntime(rec)
	if got := fromRuntime(stored); !reflect.DeepEqual(got, rec) {
		t.Fatalf("round trip lost fields:\n got %+v\nwant %+v", got, rec)
	}
	// Same JSON both ways: the two record types agree on every key.
	a, _ := json.Marshal(rec)
	b, _ := json.Marshal(stored)
	if string(a) != string(b) {
		t.Fatalf("records disagree on JSON:\nchallenge  %s\nstatestore %s", a, b)
	}
	if reflect.TypeOf(rec).NumField() != reflect.TypeOf(statestore.RuntimeRecord{}).NumField() {
		t.Fatal("the records have different field counts")
	}
}

func TestLifeStoreCommitIsAtomicAndReadable(t *testing.T) {
	st, err := statestore.Open("", statestore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ls := lifeStore{st}
	rec := challenge.Record{Name: "c", Version: "1.0.0", Slots: map[string]challenge.Slot{"a": {ContainerID: "x"}}}
	plan := challenge.SwapPlan{ID: "p", Challenge: "c", Phase: challenge.PhasePulling}
	saved, err := ls.Commit(challenge.Write{Challenge: "c", Runtime: &rec, Swap: &plan,
		Events: []challenge.Event{{Type: challenge.EventSwapStarted, Challenge: "c"}}})
	if err != nil || len(saved) != 1 || saved[0].Seq == 0 {
		t.Fatalf("commit = %+v, %v", saved, err)
	}
	got, ok, err := ls.Runtime("c")
	if err != nil || !ok || got.Slots["a"].ContainerID != "x" {
		t.Fatalf("runtime = %+v %v %v", got, ok, err)
	}
	if p, ok, _ := ls.Swap("c"); !ok || p.ID != "p" {
		t.Fatalf("swap = %+v %v", p, ok)
	}
	if _, err := ls.Commit(challenge.Write{Challenge: "c", DeleteSwap: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ls.Swap("c"); ok {
		t.Fatal("swap plan survived DeleteSwap")
	}
}
