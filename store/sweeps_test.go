package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"atomuploads/upload"
)

// quiet lists the ids Quiet gives for before.
func quiet(t testing.TB, s interface {
	Quiet(ctx context.Context, before time.Time, fn func(atomID, id string) error) error
}, before time.Time) []string {
	t.Helper()
	var ids []string
	if err := s.Quiet(ctx(t), before, func(_, id string) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestQuietListsOnlyLiveUploadsThatHaveNotChanged: the index of live
// uploads holds the ones that are not terminal, by their last change; a
// terminal upload leaves it, and a touch moves an upload's change forward.
func TestQuietListsOnlyLiveUploadsThatHaveNotChanged(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	var us []*upload.Upload
	for range 3 {
		u := newUpload(t, "atom-q", time.Now())
		if err := s.Create(c, u); err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	if _, err := s.Update(c, "atom-q", us[0].ID, func(u *upload.Upload) error { return u.Cancel(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	// The index is eventually consistent: wait for it to settle.
	deadline := time.Now().Add(20 * time.Second)
	var got []string
	for {
		got = quiet(t, s, time.Now().Add(time.Minute))
		if len(got) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(got)
	want := []string{us[1].ID, us[2].ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Quiet = %v, want the two live uploads %v (not the cancelled one)", got, want)
	}
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	if err := s.Touch(c, "atom-q", us[1].ID); err != nil {
		t.Fatal(err)
	}
	for got = quiet(t, s, mark); slices.Contains(got, us[1].ID) && time.Now().Before(deadline); got = quiet(t, s, mark) {
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, []string{us[2].ID}) {
		t.Errorf("Quiet before the touch = %v, want only the untouched upload %s", got, us[2].ID)
	}
	// A part completing is a change too.
	if _, err := s.CompletePart(c, "atom-q", us[2].ID, 0); err != nil {
		t.Fatal(err)
	}
	for got = quiet(t, s, mark); len(got) > 0 && time.Now().Before(deadline); got = quiet(t, s, mark) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != 0 {
		t.Errorf("Quiet = %v after a part completed, want none", got)
	}
	if err := s.Touch(c, "atom-q", us[0].ID); err != nil {
		t.Errorf("touching a terminal upload: %v, want no error (and no change)", err)
	}
}

func TestSweepLeases(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	const ttl = 300 * time.Millisecond
	a := upload.SweepLease("reconciler", "a", ttl)
	if err := s.AcquireSweep(c, a); err != nil {
		t.Fatalf("first acquire (creates the item): %v", err)
	}
	if err := s.AcquireSweep(c, a); err != nil {
		t.Errorf("the holder acquires again: %v, want nil", err)
	}
	if err := s.AcquireSweep(c, upload.SweepLease("reconciler", "b", ttl)); !errors.Is(err, upload.ErrLeaseHeld) {
		t.Errorf("b acquires a held sweep lease: %v, want ErrLeaseHeld", err)
	}
	if err := s.AcquireSweep(c, upload.SweepLease("deadLetters", "b", ttl)); err != nil {
		t.Errorf("sweeps are independent: %v", err)
	}
	if err := s.Renew(c, a); err != nil {
		t.Errorf("renew a sweep lease: %v", err)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if err := s.AcquireSweep(c, upload.SweepLease("reconciler", "b", ttl)); err != nil {
		t.Errorf("b takes an expired sweep lease: %v", err)
	}
	if err := s.Renew(c, a); !errors.Is(err, upload.ErrLeaseLost) {
		t.Errorf("a renews a lost sweep lease: %v, want ErrLeaseLost", err)
	}
	// The sweep items are no uploads: no live upload, no atom's list.
	if got := quiet(t, s, time.Now().Add(time.Hour)); len(got) != 0 {
		t.Errorf("Quiet = %v, want no sweep item among the live uploads", got)
	}
}

// TestAdmitCountsUpToTheLimit: a counter admits its limit and no more,
// however many ask at once; another counter is independent.
func TestAdmitCountsUpToTheLimit(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	const limit, askers = 3, 8
	admitted := make(chan bool, askers)
	for range askers {
		go func() {
			ok, err := s.Admit(c, "youtubeSessions-2026-11-29", limit)
			if err != nil {
				t.Error(err)
			}
			admitted <- ok
		}()
	}
	n := 0
	for range askers {
		if <-admitted {
			n++
		}
	}
	if n != limit {
		t.Errorf("%d admitted, want %d", n, limit)
	}
	if ok, err := s.Admit(c, "youtubeSessions-2026-11-30", limit); err != nil || !ok {
		t.Errorf("the next day's counter: %v, %v; want admitted", ok, err)
	}
	// A refund makes room for exactly one more.
	if err := s.Refund(c, "youtubeSessions-2026-11-29"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		if ok, err := s.Admit(c, "youtubeSessions-2026-11-29", limit); err != nil || ok != want {
			t.Errorf("admission %d after a refund: %v, %v; want %t", i+1, ok, err, want)
		}
	}
	// Refunds never take a counter below zero, nor create one.
	for range 2 {
		if err := s.Refund(c, "youtubeSessions-2026-12-01"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range limit + 1 {
		if ok, err := s.Admit(c, "youtubeSessions-2026-12-01", limit); err != nil || ok != (i < limit) {
			t.Errorf("admission %d of a counter refunded before any: %v, %v", i+1, ok, err)
		}
	}
}
