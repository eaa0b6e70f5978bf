package challenge

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Directory maps challenge names to handles. Readers load an immutable map;
// writers replace it whole, so lookups never take a lock.
type Directory struct {
	writeMu sync.Mutex
	m       atomic.Pointer[map[string]*Handle]
}

func (d *Directory) Get(name string) *Handle {
	if m := d.m.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

// List returns handles sorted by name.
func (d *Directory) List() []*Handle {
	m := d.m.Load()
	if m == nil {
		return nil
	}
	out := make([]*Handle, 0, len(*m))
	for _, h := range *m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (d *Directory) Put(h *Handle) {
	d.update(func(m map[string]*Handle) { m[h.name] = h })
}

func (d *Directory) Remove(name string) {
	d.update(func(m map[string]*Handle) { delete(m, name) })
}

func (d *Directory) update(change func(map[string]*Handle)) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	next := map[string]*Handle{}
	if cur := d.m.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	change(next)
	d.m.Store(&next)
}
