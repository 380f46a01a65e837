package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// queueAttributes reads a queue's approximate counts.
type queueAttributes interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// census counts the live uploads each round, for the metrics: how many
// are in each status, and how many YouTube destinations are parked, by
// what they wait for (youtubeQuota, youtubeUploadLimit,
// youtubeCredentials); and, when it can read the queues' attributes, how
// many messages the queue and the dead-letter queue hold. One instance at
// a time runs it, like every sweep, and publishes the counts; the others
// withdraw theirs (elsewhere). A round reads each live upload once,
// through the sparse index of live uploads (reads in proportion to the
// uploads in flight, and no write), and makes one GetQueueAttributes call
// per queue.
type census struct {
	store   reconcileStore
	queue   queueAttributes   // nil: no queue depths
	queues  map[string]string // metrics.Queue… → URL
	metrics *metrics.Metrics
	log     *zap.Logger
	now     func() time.Time
	warned  bool // a failed GetQueueAttributes was logged
}

func (c *census) name() string { return "census" }

func (c *census) sweep(ctx context.Context) error {
	c.depths(ctx)
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

// depths publishes the queues' approximate counts. Without
// sqs:GetQueueAttributes it says so once, and the rest of the census
// goes on.
func (c *census) depths(ctx context.Context) {
	if c.queue == nil {
		return
	}
	for name, url := range c.queues {
		out, err := c.queue.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(url),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, types.QueueAttributeNameApproximateNumberOfMessagesDelayed},
		})
		if err != nil {
			if !c.warned && ctx.Err() == nil {
				c.warned = true
				c.log.Warn("cannot read the queue's depth for the metrics (sqs:GetQueueAttributes)", zap.String("queue", name), zap.Error(err))
			}
			continue
		}
		n := func(a types.QueueAttributeName) int {
			v, _ := strconv.Atoi(out.Attributes[string(a)])
			return v
		}
		c.metrics.QueueDepth(name, n(types.QueueAttributeNameApproximateNumberOfMessages),
			n(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible), n(types.QueueAttributeNameApproximateNumberOfMessagesDelayed))
	}
}

// elsewhere withdraws this instance's counts: another one runs the census.
func (c *census) elsewhere() { c.metrics.CensusElsewhere() }
