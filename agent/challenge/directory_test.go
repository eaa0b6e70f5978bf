package challenge

import (
	"fmt"
	"sort"
	"sync"
	"testing"
)

func handleNames(hs []*Handle) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.name
	}
	return out
}

func TestDirectoryPutGetListRemove(t *testing.T) {
	var d Directory
	if d.Get("a") != nil {
		t.Fatal("empty directory returned a handle")
	}
	if got := d.List(); len(got) != 0 {
		t.Fatalf("empty directory lists %v", handleNames(got))
	}

	hs := map[string]*Handle{}
	for _, name := range []string{"zeta", "alpha", "mid-1", "beta", "mid-0"} {
		hs[name] = NewHandle(name)
		d.Put(hs[name])
	}
	for name, h := range hs {
		if got := d.Get(name); got != h {
			t.Fatalf("get(%q) = %p, want %p", name, got, h)
		}
	}
	if d.Get("missing") != nil {
		t.Fatal("get of an unknown name returned a handle")
	}
	want := []string{"alpha", "beta", "mid-0", "mid-1", "zeta"}
	if got := handleNames(d.List()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("list = %v, want %v", got, want)
	}

	// put replaces a handle of the same name.
	repl := NewHandle("beta")
	d.Put(repl)
	if d.Get("beta") != repl {
		t.Fatal("put did not replace the existing handle")
	}
	if n := len(d.List()); n != 5 {
		t.Fatalf("list has %d handles after replace, want 5", n)
	}

	d.Remove("mid-0")
	d.Remove("not-there")
	if d.Get("mid-0") != nil {
		t.Fatal("removed handle still found")
	}
	want = []string{"alpha", "beta", "mid-1", "zeta"}
	if got := handleNames(d.List()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("list after remove = %v, want %v", got, want)
	}
}

func TestDirectoryListIsASnapshot(t *testing.T) {
	var d Directory
	d.Put(NewHandle("a"))
	snap := d.List()
	d.Put(NewHandle("b"))
	d.Remove("a")
	if got := handleNames(snap); len(got) != 1 || got[0] != "a" {
		t.Fatalf("earlier list changed to %v", got)
	}
}

func TestDirectoryConcurrentReaders(t *testing.T) {
	var d Directory
	const n = 200
	stop := make(chan struct{})
	var readers sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				hs := d.List()
				names := handleNames(hs)
				if !sort.StringsAreSorted(names) {
					errs <- fmt.Errorf("list not sorted: %v", names)
					return
				}
				for _, h := range hs {
					if got := d.Get(h.name); got == nil || got.name != h.name {
						errs <- fmt.Errorf("get(%q) = %v while writer only adds", h.name, got)
						return
					}
					if st := h.status.Load(); st == nil || st.Name != h.name {
						errs <- fmt.Errorf("handle %q has status %+v", h.name, st)
						return
					}
				}
			}
		}()
	}
	for i := range n {
		d.Put(NewHandle(fmt.Sprintf("c-%03d", i)))
	}
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(d.List()); got != n {
		t.Fatalf("list has %d handles, want %d", got, n)
	}
}

func TestDirectoryConcurrentWriters(t *testing.T) {
	var d Directory
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				d.Put(NewHandle(fmt.Sprintf("w%d-%02d", w, i)))
			}
		}()
	}
	wg.Wait()
	if got := len(d.List()); got != 200 {
		t.Fatalf("concurrent puts lost updates: %d handles, want 200", got)
	}
}

func TestChallengeHandle(t *testing.T) {
	h := NewHandle("x")
	st := h.status.Load()
	if st.Name != "x" || st.State != Registered || st.Health != HealthUnknown {
		t.Fatalf("initial status %+v", st)
	}
	sent := 0
	for h.NotifyList(make([]Instance, sent)) {
		sent++
		if sent > 1000 {
			t.Fatal("send never reports a full inbox")
		}
	}
	if sent != cap(h.inbox) {
		t.Fatalf("send accepted %d messages, want the inbox capacity %d", sent, cap(h.inbox))
	}
	if got := (<-h.inbox).(msgInstanceList); len(got.instances) != 0 {
		t.Fatalf("first message %v, want the empty list", got)
	}
	if !h.Notify(InstanceEvent{ID: "again"}) {
		t.Fatal("send refused after the inbox drained one")
	}
}
