package worker_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

// assetDue records u's video on YouTube with the asset not added yet.
func (e *unitEnv) assetDue(u *upload.Upload) {
	e.t.Helper()
	e.onYouTube(u, time.Time{})
	e.store.modify(e.t, u.AtomID, u.ID, func(u *upload.Upload) { u.Destination(upload.YouTube).AssetAdded = false })
}

const pollVideoURL = "https://www.youtube.com/watch?v=vidPOLL"

func TestUnitAssetIsAddedOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.assetDue(u)
	others := make(chan struct{})
	e.atom.onCall("AddAsset", func(n int) {
		if n == 1 {
			<-others // the first call lasts until every other message was handled
		}
	})
	instances := []*worker.Dispatcher{e.d, e.instance("unit-b")}
	first := make(chan worker.Result)
	go func() { first <- e.handle(ownBody(worker.KindAsset, u, 0)) }()
	waitUntil(t, "the first asset call", func() bool { return e.atom.count("AddAsset") == 1 })
	var wg sync.WaitGroup
	for i := range 7 {
		wg.Go(func() {
			if res := e.handleOn(instances[i%2], ownBody(worker.KindAsset, u, 0), 1); res != (worker.Result{}) {
				t.Errorf("Handle = %+v, want the message deleted", res)
			}
		})
	}
	wg.Wait()
	close(others)
	if res := <-first; res != (worker.Result{}) {
		t.Fatalf("first Handle = %+v, want success", res)
	}
	if n, assets := e.atom.count("AddAsset"), e.atom.assetsOf(u.AtomID); n != 1 || len(assets) != 1 || assets[0] != pollVideoURL {
		t.Errorf("%d asset calls, assets %q; want one call adding %s", n, assets, pollVideoURL)
	}
	if !e.get(u).Destination(upload.YouTube).AssetAdded {
		t.Error("the asset is not recorded")
	}
	// Each message that found the lease held looks again once it expires.
	later := e.queue.ofKind(worker.KindAsset)
	if len(later) != 7 {
		t.Fatalf("%d asset messages, want 7", len(later))
	}
	for _, m := range later {
		if m.Delay != e.cfg.LeaseTTL+time.Second || m.Failures != 0 {
			t.Errorf("asset message %+v, want one after the lease TTL + 1s, failures 0", m)
		}
	}
	e.mustHandle(later[0].Body)
	if n := e.atom.count("AddAsset"); n != 1 {
		t.Errorf("%d asset calls after a later message, want 1", n)
	}
}

// TestUnitAssetFailureIsTriedAgainLaterKeepingTheLease: a failed call
// keeps the asset lease until it expires (the addition may still land),
// and the work is retried later on a message of its own; a retry that
// comes before the lease expires waits for it, failures unchanged.
func TestUnitAssetFailureIsTriedAgainLaterKeepingTheLease(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.assetDue(u)
	e.atom.failNext("AddAsset", errors.New("atom API answered 503"))
	e.mustHandle(ownBody(worker.KindAsset, u, 0))
	later := e.queue.ofKind(worker.KindAsset)
	if len(later) != 1 {
		t.Fatalf("asset messages %+v, want one", later)
	}
	e.checkRetry(later[0], worker.KindAsset, 1, "a dependency could not be reached (see the service's logs)")
	l, ok := e.store.lease(u.AtomID, u.ID, upload.LeaseAsset)
	if !ok || time.UnixMilli(l.Expiry).Before(e.store.clock.Now()) {
		t.Fatalf("asset lease %+v (present %t), want kept until it expires", l, ok)
	}
	if n := e.logged("attempt failed; it is retried later"); n != 1 {
		t.Errorf("%d retry lines, want 1", n)
	}
	if n := e.store.touches(u.AtomID, u.ID); n != 1 {
		t.Errorf("%d touches, want 1", n)
	}

	// The next message comes before the lease expires: it waits for it.
	e.mustHandle(later[0].Body)
	if n := e.atom.count("AddAsset"); n != 1 {
		t.Errorf("%d asset calls while the failed call's lease is kept, want 1", n)
	}
	later = e.queue.ofKind(worker.KindAsset)
	if len(later) != 2 || later[1].Delay != e.cfg.LeaseTTL+time.Second || later[1].Failures != 1 || later[1].Cause != later[0].Cause {
		t.Fatalf("asset messages %+v, want a second one after the lease TTL + 1s, failures and cause kept", later)
	}

	e.store.clock.Advance(e.cfg.LeaseTTL + time.Second)
	e.mustHandle(later[1].Body)
	if n, assets := e.atom.count("AddAsset"), e.atom.assetsOf(u.AtomID); n != 2 || len(assets) != 1 {
		t.Errorf("%d asset calls, assets %q; want the second call to add it", n, assets)
	}
	if d := e.get(u).Destination(upload.YouTube); !d.AssetAdded || d.Error != "" {
		t.Errorf("asset recorded %t, error %q; want recorded without error", d.AssetAdded, d.Error)
	}
	if _, held := e.store.lease(u.AtomID, u.ID, upload.LeaseAsset); held {
		t.Error("the asset lease is still held after the asset was added")
	}
}

// TestUnitAssetGivesUpAfterMaxAttempts: the attempt that makes MaxAttempts
// without progress gives up; the video is fine on YouTube, so its
// destination keeps its status and says what went wrong with the atom.
func TestUnitAssetGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.assetDue(u)
	e.atom.failNext("AddAsset", errors.New("atom API answered 500"))
	e.mustHandle(ownBody(worker.KindAsset, u, e.cfg.MaxAttempts-1))
	d := e.get(u).Destination(upload.YouTube)
	want := "the video is on YouTube, but the atom API did not take it as an asset: gave up after 3 attempts without progress: " +
		"a dependency could not be reached (see the service's logs)"
	if d.AssetError != want || d.Error != "" {
		t.Errorf("youtube destination asset error %q (error %q), want %q (and none)", d.AssetError, d.Error, want)
	}
	if d.AssetAdded || d.Status != upload.DestTranscoding {
		t.Errorf("asset recorded %t, status %s; want not recorded, the video's status unchanged", d.AssetAdded, d.Status)
	}
	if m := e.queue.ofKind(worker.KindAsset); len(m) != 0 {
		t.Errorf("asset messages %+v, want none after giving up", m)
	}
	if n := e.logged("gave up"); n != 1 {
		t.Errorf("%d gave-up lines, want 1", n)
	}
}

func TestUnitAssetAlreadyOnTheAtomIsRecorded(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.assetDue(u)
	// An earlier holder added it and died before recording it.
	if _, err := e.atom.AddAsset(t.Context(), u.AtomID, pollVideoURL); err != nil {
		t.Fatal(err)
	}
	e.mustHandle(ownBody(worker.KindAsset, u, 0))
	if n := len(e.atom.assetsOf(u.AtomID)); n != 1 || !e.get(u).Destination(upload.YouTube).AssetAdded {
		t.Errorf("%d assets, recorded %t; want one, recorded", n, e.get(u).Destination(upload.YouTube).AssetAdded)
	}
	if n := e.logged("asset found on the atom already"); n != 1 {
		t.Errorf("%d found-already lines, want 1", n)
	}
}

func TestUnitAssetNotRecordedIsNotAddedTwice(t *testing.T) {
	t.Parallel()
	e := newUnitEnv(t)
	u := e.create(threeParts, ytDest())
	e.assetDue(u)
	e.store.failNext("UpdateHolding", errors.New("ProvisionedThroughputExceeded"))
	e.mustHandle(ownBody(worker.KindAsset, u, 0))
	later := e.queue.ofKind(worker.KindAsset)
	if len(later) != 1 || later[0].Failures != 1 {
		t.Fatalf("asset messages %+v, want one with failures 1", later)
	}
	e.mustHandle(later[0].Body)
	if n, assets := e.atom.count("AddAsset"), e.atom.assetsOf(u.AtomID); n != 2 || len(assets) != 1 {
		t.Errorf("%d asset calls, assets %q; want the atom asked twice and the asset there once", n, assets)
	}
	if !e.get(u).Destination(upload.YouTube).AssetAdded {
		t.Error("the asset is not recorded")
	}
}

func TestUnitAssetThatIsNotDue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  unitOpts
		setup func(e *unitEnv, u *upload.Upload)
	}{
		{name: "no atom API", opts: unitOpts{noAtom: true}, setup: func(e *unitEnv, u *upload.Upload) { e.assetDue(u) }},
		{name: "no video yet", setup: func(*unitEnv, *upload.Upload) {}},
		{name: "added already", setup: func(e *unitEnv, u *upload.Upload) { e.onYouTube(u, time.Time{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t, tt.opts)
			u := e.create(threeParts, ytDest())
			tt.setup(e, u)
			before := e.get(u)
			e.mustHandle(ownBody(worker.KindAsset, u, 0))
			if n := e.store.count("Acquire"); n != 0 {
				t.Errorf("%d lease acquisitions, want none", n)
			}
			if e.atom != nil && e.atom.count("AddAsset") != 0 {
				t.Errorf("%d asset calls, want none", e.atom.count("AddAsset"))
			}
			if n := len(e.queue.sent()); n != 0 {
				t.Errorf("%d messages sent, want none", n)
			}
			if got := e.get(u); got.Version != before.Version {
				t.Errorf("record version %d → %d, want unchanged", before.Version, got.Version)
			}
		})
	}
}

// waitUntil polls cond until it holds; the deadline only stops a test
// that would otherwise hang.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
