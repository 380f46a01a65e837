package worker_test

import (
	"testing"
	"time"

	"atomuploads/upload"
	"atomuploads/worker"
)

// TestUnitAssetOfAFailedDestinationIsNotAdded: the relay and the
// reconciler name no asset for a YouTube destination that failed (a video
// YouTube rejected, an upload cancelled), but an asset message that was
// already on its way (a retry of a failed call, a re-homed message) adds
// it anyway.
func TestUnitAssetOfAFailedDestinationIsNotAdded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fail func(u *upload.Upload)
	}{
		{name: "YouTube rejected the video", fail: func(u *upload.Upload) {
			d := u.Destination(upload.YouTube)
			d.Status, d.Error = upload.DestFailed, "YouTube rejected the video: duplicate"
			u.Settle(time.Now())
		}},
		{name: "the upload was cancelled", fail: func(u *upload.Upload) { _ = u.Cancel(time.Now()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newUnitEnv(t)
			u := e.create(threeParts, ytDest())
			e.assetDue(u)
			e.store.modify(t, u.AtomID, u.ID, tt.fail)
			e.mustHandle(ownTask{kind: worker.KindAsset, failures: 1, cause: "a dependency could not be reached (see the service's logs)"}.body(u))
			if n, assets := e.atom.count("AddAsset"), e.atom.assetsOf(u.AtomID); n != 0 || len(assets) != 0 {
				t.Errorf("%d asset calls, assets %q; want none for a failed destination", n, assets)
			}
			if d := e.get(u).Destination(upload.YouTube); d.AssetAdded {
				t.Errorf("asset recorded for a failed destination (error %q)", d.Error)
			}
		})
	}
}
