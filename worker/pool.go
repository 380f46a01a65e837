// Package worker consumes the queue of S3 events and the service's own
// follow-up messages with a bounded pool of goroutines, and runs the steps
// of an upload: mark a part complete, relay the parts to YouTube in order,
// reassemble the original by multipart copy once every part is in, start
// and follow the s3Bucket transcode, follow YouTube's processing and add the
// video to the atom.
//
// A message is deleted only once its effect is durable in the progress
// table; every step is a conditional, idempotent write, so a message may be
// delivered any number of times to any instance. A message that keeps
// failing is left to the queue's redrive policy (dead-letter queue).
//
// IAM: sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility
// and sqs:SendMessage on the queue; s3:GetObject, s3:PutObject (the
// multipart calls on …/full), s3:AbortMultipartUpload on
// arn:aws:s3:::<bucket>/uploads/*; and the store's DynamoDB actions.
package worker

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"
)

// SQSAPI is what the pool needs of SQS.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Message is one received message.
type Message struct {
	ID           string
	Body         string
	ReceiveCount int
}

// Result tells the pool what became of a message.
type Result struct {
	// Err means the message's work failed and must be tried again: it is
	// left on the queue (its visibility shortened to a backoff), and the
	// redrive policy moves it to the dead-letter queue after too many tries.
	// Without Err the message is deleted: the handler has made its effect
	// durable, including any follow-up message it sent.
	Err error
}

// Handler handles one message. ctx is cancelled when the process is out of
// shutdown grace: the handler must then return, and the message goes back
// to the queue.
type Handler interface {
	Handle(ctx context.Context, m Message) Result
}

// PoolConfig configures the pool.
type PoolConfig struct {
	QueueURL    string
	Concurrency int           // messages handled at once
	Visibility  time.Duration // visibility of a received message, extended while it is handled
	WaitTime    time.Duration // long poll; 20 s unless set
}

// Pool receives messages and hands them to the handler, at most
// Concurrency at a time.
type Pool struct {
	sqs     SQSAPI
	cfg     PoolConfig
	handler Handler
	log     *zap.Logger
}

// NewPool returns a pool; Run starts it.
func NewPool(c SQSAPI, cfg PoolConfig, h Handler, log *zap.Logger) *Pool {
	if cfg.WaitTime == 0 {
		cfg.WaitTime = 20 * time.Second
	}
	return &Pool{sqs: c, cfg: cfg, handler: h, log: log}
}

// Run receives until ctx is cancelled, then stops receiving and waits for
// the messages in hand. Their handlers keep running for at most grace;
// after that their context is cancelled, and what they did not finish goes
// back to the queue (visibility 0) for another instance. Run returns nil
// after a clean stop.
func (p *Pool) Run(ctx context.Context, grace time.Duration) error {
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	slots := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	failures := 0
	for ctx.Err() == nil {
		// Wait for one free slot, then take as many more as are free (up
		// to SQS's 10 a call).
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n := 1
		for n < 10 {
			select {
			case slots <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.cfg.QueueURL),
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             int32(p.cfg.WaitTime / time.Second),
			VisibilityTimeout:           int32(p.cfg.Visibility / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		var msgs []types.Message
		if err == nil {
			msgs = out.Messages
			failures = 0
		}
		for range n - len(msgs) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			backoff := min(time.Duration(failures)*time.Second, 30*time.Second)
			p.log.Error("receive from queue failed", zap.Error(err), zap.Duration("retryIn", backoff))
			sleep(ctx, backoff)
			continue
		}
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				p.handle(workCtx, m)
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		p.log.Warn("shutdown grace is over: handing back messages in flight")
		stopWork()
		<-done
	}
	return nil
}

// handle runs the handler with a visibility heartbeat, then deletes the
// message, or hands it back.
func (p *Pool) handle(ctx context.Context, m types.Message) {
	msg := Message{ID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body)}
	msg.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		p.heartbeat(hbCtx, m.ReceiptHandle)
	}()
	res := p.handler.Handle(ctx, msg)
	stopHeartbeat()
	hb.Wait()

	// Bookkeeping must finish even when ctx is over, within a few seconds
	// of what is left of the shutdown grace.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if res.Err != nil && ctx.Err() != nil {
		p.setVisibility(bctx, m.ReceiptHandle, 0) // hand back: another instance takes it now
		return
	}
	if res.Err != nil {
		backoff := retryBackoff(msg.ReceiveCount)
		p.log.Warn("message failed; it will be retried",
			zap.String("messageId", msg.ID), zap.Int("receiveCount", msg.ReceiveCount),
			zap.Duration("retryIn", backoff), zap.Error(res.Err))
		p.setVisibility(bctx, m.ReceiptHandle, backoff)
		return
	}
	if _, err := p.sqs.DeleteMessage(bctx, &sqs.DeleteMessageInput{
		QueueUrl: aws.String(p.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle,
	}); err != nil {
		// Harmless: the message comes back and its effect is idempotent.
		p.log.Warn("delete message failed", zap.String("messageId", msg.ID), zap.Error(err))
	}
}

// bookkeepingTimeout bounds each SQS call made after a handler returned, so
// that a shutdown ends within the container's stop timeout.
const bookkeepingTimeout = 3 * time.Second

// heartbeat keeps the message invisible while it is handled.
func (p *Pool) heartbeat(ctx context.Context, receipt *string) {
	t := time.NewTicker(p.cfg.Visibility / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			p.setVisibility(cctx, receipt, p.cfg.Visibility)
			cancel()
		}
	}
}

func (p *Pool) setVisibility(ctx context.Context, receipt *string, d time.Duration) {
	_, err := p.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(p.cfg.QueueURL),
		ReceiptHandle:     receipt,
		VisibilityTimeout: int32(d / time.Second),
	})
	if err != nil && ctx.Err() == nil {
		p.log.Warn("change message visibility failed", zap.Error(err))
	}
}

// retryBackoff is the visibility of a failed message before its next try:
// exponential in the receive count, jittered, at most 5 minutes.
func retryBackoff(receiveCount int) time.Duration {
	d := time.Duration(1<<min(max(receiveCount, 1), 8)) * time.Second
	d = min(d, 5*time.Minute)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
