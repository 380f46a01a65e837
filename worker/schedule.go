package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// maxDelay is SQS's longest message delay.
const maxDelay = 15 * time.Minute

// scheduler sends the service's own follow-up messages: work that is due
// later, or that another instance may as well do. Steps schedule the next
// step before they record the current one, so that a crash in between
// leaves a duplicate (which the steps tolerate), never a gap.
type scheduler struct {
	queue         Sender
	queueURL      string
	deadLetterURL string
}

// schedule sends t to be handled after delay (at most SQS's 15 minutes).
func (s *scheduler) schedule(ctx context.Context, t Task, delay time.Duration) error {
	_, err := s.queue.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     aws.String(s.queueURL),
		MessageBody:  aws.String(t.body()),
		DelaySeconds: delaySeconds(delay),
	})
	if err != nil {
		return fmt.Errorf("schedule %s of %s: %w", t.Kind, t.UploadID, err)
	}
	return nil
}

// delaySeconds is delay in SQS's whole seconds, rounded up (a message
// must not come back before it is due: one that came a fraction early
// would find its work not yet due, and send itself again with no delay),
// and at most SQS's 15 minutes.
func delaySeconds(delay time.Duration) int32 {
	d := min(max(delay, 0), maxDelay)
	return int32((d + time.Second - 1) / time.Second)
}

// deadLetter puts t on the dead-letter queue, for ops.
func (s *scheduler) deadLetter(ctx context.Context, t Task) error {
	_, err := s.queue.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(s.deadLetterURL),
		MessageBody: aws.String(t.body()),
	})
	if err != nil {
		return fmt.Errorf("dead-letter %s of %s: %w", t.Kind, t.UploadID, err)
	}
	return nil
}
