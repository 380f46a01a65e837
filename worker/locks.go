package worker

import "sync"

// keyedLocks are the in-process per-upload locks of the YouTube writer.
// A goroutine that finds the lock held flags the key instead of waiting;
// the holder sees the flag when it lets go and runs once more, so a part
// completed after the holder's last look is never left behind.
type keyedLocks struct {
	mu      sync.Mutex
	held    map[string]bool
	flagged map[string]bool
}

// lockOrFlag takes the lock of key and reports true, or, when another
// goroutine holds it, flags the key and reports false.
func (l *keyedLocks) lockOrFlag(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] {
		if l.flagged == nil {
			l.flagged = map[string]bool{}
		}
		l.flagged[key] = true
		return false
	}
	if l.held == nil {
		l.held = map[string]bool{}
	}
	l.held[key] = true
	return true
}

// unlockUnlessFlagged releases the lock of key, unless the key was flagged
// while it was held: then it clears the flag, keeps the lock and reports
// true, and the holder must run again.
func (l *keyedLocks) unlockUnlessFlagged(key string) (again bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flagged[key] {
		delete(l.flagged, key)
		return true
	}
	delete(l.held, key)
	return false
}

// unlock releases the lock of key and clears its flag.
func (l *keyedLocks) unlock(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, key)
	delete(l.flagged, key)
}
