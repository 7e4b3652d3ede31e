package fakeapi

// TrimHistory forgets all but the last keep events, and every version of
// an object older than what a LIST or WATCH at the oldest kept revision
// still needs. A long run (a soak test writing thousands of events a
// second) calls it now and then to keep the store's memory bounded: unlike
// Compact, a watcher that is at most keep events behind resumes without a
// 410 Expired, as on a real apiserver whose etcd compacts old revisions.
func (s *Server) TrimHistory(keep int) { s.store.trim(keep) }

func (s *store) trim(keep int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if keep < 0 || len(s.events) <= keep {
		return
	}
	cut := s.events[len(s.events)-keep-1].rv // the newest revision forgotten
	s.compacted = max(s.compacted, cut)
	s.events = append([]*event(nil), s.events[len(s.events)-keep:]...)
	for _, keys := range s.keys {
		for k, vs := range keys {
			// Keep the last version at or before cut (what a snapshot at
			// cut sees) and every later one.
			i := 0
			for i+1 < len(vs) && vs[i+1].rv <= cut {
				i++
			}
			if vs[i].rv > cut {
				continue // nothing at or before cut
			}
			if i == len(vs)-1 && vs[i].obj == nil {
				delete(keys, k) // deleted at or before cut
				continue
			}
			if i > 0 {
				keys[k] = append([]version(nil), vs[i:]...)
			}
		}
	}
}
