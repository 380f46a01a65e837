package worker

import (
	"context"
	"time"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// census counts the live uploads each round, for the metrics: how many
// are in each status, and how many YouTube destinations are parked, by
// what they wait for (youtubeQuota, youtubeUploadLimit,
// youtubeCredentials). One instance at a time runs it, like every sweep,
// and publishes the counts; the others withdraw theirs (elsewhere). A
// round reads each live upload once, through the sparse index of live
// uploads: reads in proportion to the uploads in flight, and no write.
type census struct {
	store   reconcileStore
	metrics *metrics.Metrics
	now     func() time.Time
}

func (c *census) name() string { return "census" }

func (c *census) sweep(ctx context.Context) error {
	byStatus, parked := map[string]int{}, map[string]int{}
	// Every live upload: none changed later than a day from now.
	err := c.store.Quiet(ctx, c.now().Add(24*time.Hour), func(atomID, id string) error {
		u, err := c.store.Get(ctx, atomID, id)
		switch {
		case upload.ErrorCode(err) == upload.ENOTFOUND:
			return nil // expired meanwhile
		case err != nil:
			return err
		case u.Status.Terminal():
			return nil // the index lags behind
		}
		byStatus[string(u.Status)]++
		if d := u.Destination(upload.YouTube); d != nil && d.WaitingFor != "" && !d.Status.Terminal() {
			parked[d.WaitingFor]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.metrics.Census(byStatus, parked)
	return nil
}

// elsewhere withdraws this instance's counts: another one runs the census.
func (c *census) elsewhere() { c.metrics.CensusElsewhere() }
