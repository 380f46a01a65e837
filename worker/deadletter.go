package worker

import (
	"context"
	"errors"
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
			QueueUrl:            aws.String(r.url),
			MaxNumberOfMessages: 10,
			VisibilityTimeout:   60,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
			},
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
	sent := sentAt(m)
	for _, t := range tasks {
		ulog := log.With(zap.String("atomId", t.AtomID), zap.String("uploadId", t.UploadID), zap.String("kind", string(t.Kind)))
		if t.GaveUp {
			// The service recorded the give-up before it put the letter
			// here: applied again now, it would undo a retry since.
			ulog.Info("removed a dead letter of work already given up")
			continue
		}
		// The redrive policy moved it here after its handlers kept failing
		// to finish, and its receive count goes on counting here (this
		// reader's own receive is the one more).
		rc, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		attempts, why := max(t.Attempt+rc-1, 1), t.Cause
		if why == "" {
			why = "the workers handling it kept stopping before they finished (killed, out of memory, or a dependency unreachable)"
		}
		reason := fmt.Sprintf("gave up after %d attempts without progress: %s", attempts, why)
		var changed bool
		_, err := r.store.Update(ctx, t.AtomID, t.UploadID, func(u *upload.Upload) error {
			if why := outlived(u, t, sent); why != "" {
				return &staleLetter{why}
			}
			before := fmt.Sprint(u.Status, u.Error, destinationErrors(u))
			if err := giveUpChange(t.Kind, reason, r.now)(u); err != nil {
				return err
			}
			changed = before != fmt.Sprint(u.Status, u.Error, destinationErrors(u))
			return nil
		})
		var stale *staleLetter
		switch {
		case upload.ErrorCode(err) == upload.ENOTFOUND:
			ulog.Warn("dropped a dead letter of an unknown upload")
		case errors.As(err, &stale):
			ulog.Info("dropped a dead letter the upload has outlived", zap.String("why", stale.why))
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

// staleLetter is a dead letter of work the upload has moved past.
type staleLetter struct{ why string }

func (e *staleLetter) Error() string { return e.why }

// outlived says why the dead letter of t, sent at sent (zero if unknown),
// no longer describes the upload u, or "" if it still does: a person
// retried the work since, the work was done since, or it progressed since
// the letter's mark. Whatever is still due then has a driver in the
// reconciler, which re-drives any upload nobody drives.
func outlived(u *upload.Upload, t Task, sent time.Time) string {
	if u.Status.Terminal() && u.Status != upload.StatusFailed {
		return "the upload is " + string(u.Status)
	}
	// A retry restarts destination work, which the reconciler drives from
	// then on; a part's event is driven by nothing else, so its letter
	// counts whatever was retried.
	if t.Kind != KindPart && !sent.IsZero() && !u.RetriedAt.IsZero() && !u.RetriedAt.Before(sent) {
		return "the upload was retried since"
	}
	if t.Marked && markOf(u, t.Kind) > t.Mark {
		return "the work progressed since"
	}
	done := false
	switch t.Kind {
	case KindPart:
		done = u.Completed[t.Part] || u.Assembled
	case KindReassemble:
		done = u.Assembled
	case KindRelay: // done once YouTube has the video
		d := u.Destination(upload.YouTube)
		done = d == nil || d.VideoID != "" || d.Status == upload.DestComplete
	case KindYouTubePoll:
		d := u.Destination(upload.YouTube)
		done = d == nil || d.Status == upload.DestComplete
	case KindAsset:
		d := u.Destination(upload.YouTube)
		done = d == nil || d.AssetAdded
	case KindFull: // done once a job runs
		d := u.Destination(upload.S3Bucket)
		done = d == nil || d.JobID != "" || d.Status == upload.DestComplete
	case KindTranscodePoll:
		d := u.Destination(upload.S3Bucket)
		done = d == nil || d.Status == upload.DestComplete
	}
	if done {
		return "the work was done since"
	}
	return ""
}

// sentAt is when SQS first took the message (its SentTimestamp, which the
// redrive keeps), or the zero time when it does not say.
func sentAt(m types.Message) time.Time {
	ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func destinationErrors(u *upload.Upload) []string {
	out := make([]string, 0, len(u.Destinations))
	for _, d := range u.Destinations {
		out = append(out, string(d.Status)+":"+d.Error+":"+d.AssetError)
	}
	return out
}
