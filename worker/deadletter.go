package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"atomuploads/upload"
)

// deadLetterQueue is what the dead-letter reader needs of SQS.
type deadLetterQueue interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// deadLetters reads the dead-letter queue: a message there is work the
// service gave up on (it put it there itself after MaxAttempts attempts
// without progress, with the cause) or that the queue's redrive policy
// moved there (its handlers kept dying, or could not even hand it on).
// For a message of an upload, the work's destination is failed with a
// readable error (if it is not already), the fact is logged once, and the
// message deleted. A message of no upload is logged and left for ops, out
// of sight for a while so that it is logged again only that often.
type deadLetters struct {
	queue deadLetterQueue
	url   string
	store recordStore
	log   *zap.Logger
	now   func() time.Time
}

// deadLettersPerRound bounds one round's work.
const deadLettersPerRound = 100

// opsVisibility keeps a message of no upload out of the reader's sight.
const opsVisibility = 12 * time.Hour

func (r *deadLetters) name() string { return "deadLetters" }

func (r *deadLetters) sweep(ctx context.Context) error {
	for read := 0; read < deadLettersPerRound; {
		out, err := r.queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(r.url),
			MaxNumberOfMessages:         10,
			VisibilityTimeout:           60,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			return fmt.Errorf("read the dead-letter queue: %w", err)
		}
		if len(out.Messages) == 0 {
			return nil
		}
		for _, m := range out.Messages {
			read++
			if err := r.handle(ctx, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *deadLetters) handle(ctx context.Context, m types.Message) error {
	id := aws.ToString(m.MessageId)
	log := r.log.With(zap.String("messageId", id))
	msg, err := parse(aws.ToString(m.Body))
	tasks := msg.tasks()
	if err != nil || len(tasks) == 0 {
		body := aws.ToString(m.Body)
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		log.Warn("left a dead letter of no upload for ops", zap.String("body", body))
		_, err := r.queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(r.url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(opsVisibility / time.Second),
		})
		return err
	}
	for _, t := range tasks {
		// The service puts given-up work here itself, with its attempts
		// and cause; the redrive policy moves a message here after its
		// handlers kept failing to finish, and its receive count goes on
		// counting here (this reader's own receive is the one more).
		rc, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		attempts, why := max(t.Attempt+rc-1, 1), t.Cause
		if why == "" {
			why = "the workers handling it kept stopping before they finished (killed, out of memory, or a dependency unreachable)"
		}
		reason := fmt.Sprintf("gave up after %d attempts without progress: %s", attempts, why)
		var changed bool
		_, err := r.store.Update(ctx, t.AtomID, t.UploadID, func(u *upload.Upload) error {
			before := fmt.Sprint(u.Status, u.Error, destinationErrors(u))
			if err := giveUpChange(t.Kind, reason, r.now)(u); err != nil {
				return err
			}
			changed = before != fmt.Sprint(u.Status, u.Error, destinationErrors(u))
			return nil
		})
		ulog := log.With(zap.String("atomId", t.AtomID), zap.String("uploadId", t.UploadID), zap.String("kind", string(t.Kind)))
		switch {
		case upload.ErrorCode(err) == upload.ENOTFOUND:
			ulog.Warn("dropped a dead letter of an unknown upload")
		case err != nil:
			return err
		case changed:
			ulog.Error("failed work from the dead-letter queue", zap.String("destination", string(destinationOf(t.Kind))), zap.String("error", reason))
		default:
			ulog.Info("removed a dead letter of work already given up")
		}
	}
	_, err = r.queue.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.url), ReceiptHandle: m.ReceiptHandle})
	return err
}

func destinationErrors(u *upload.Upload) []string {
	out := make([]string, 0, len(u.Destinations))
	for _, d := range u.Destinations {
		out = append(out, string(d.Status)+":"+d.Error)
	}
	return out
}
