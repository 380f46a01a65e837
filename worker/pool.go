package worker

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"atomuploads/metrics"
	"atomuploads/retry"
)

// Retry curves of the pool.
var (
	// receiveRetry paces ReceiveMessage calls after failures in a row.
	receiveRetry = retry.Policy{Base: 2 * time.Second, Cap: 30 * time.Second}
	// messageRetry is the visibility of a failed message before its next
	// try, by its receive count.
	messageRetry = retry.Policy{Base: 2 * time.Second, Cap: 5 * time.Minute}
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
	// Detach, when set, lets a handler that will run long (a relay's
	// turn, for as long as parts keep coming) give its slot back to other
	// messages: it then counts among the pool's long handlers, of which
	// there are at most Concurrency, beside the slots. It reports whether
	// it did (false: every place for long handlers is taken, and the
	// handler keeps its slot; a relay tries again at its next turn). Part
	// events and follow-ups, which are short, are so not queued behind up
	// to Concurrency relays; beyond that, relays hold slots too.
	Detach func() bool
}

// Result tells the pool what became of a message.
type Result struct {
	// Err means the message's work failed and must be tried again: it is
	// left on the queue (its visibility shortened to a backoff), and the
	// redrive policy moves it to the dead-letter queue after too many tries.
	// Without Err the message is deleted: the handler has made its effect
	// durable, including any follow-up message it sent.
	Err error
	// DeadLetter moves the message to the dead-letter queue at once (or,
	// with none configured, leaves it to the redrive policy): nothing here
	// can handle it, and it must not be lost.
	DeadLetter bool
}

// Handler handles one message. ctx is cancelled when the process is out of
// shutdown grace: the handler must then return, and the message goes back
// to the queue.
type Handler interface {
	Handle(ctx context.Context, m Message) Result
}

// PoolConfig configures the pool.
type PoolConfig struct {
	QueueURL      string
	DeadLetterURL string        // where DeadLetter results go; empty: the redrive policy moves them
	Concurrency   int           // messages handled at once; as many more may run long, detached (Message.Detach)
	Visibility    time.Duration // visibility of a received message, extended while it is handled
	WaitTime      time.Duration // long poll; 20 s unless set
	Metrics       *metrics.Metrics
}

// Pool receives messages and hands them to the handler, at most
// Concurrency at a time in its slots, and as many more detached long
// handlers (Message.Detach). Start begins; Stop ends, within its
// context's deadline.
type Pool struct {
	sqs     SQSAPI
	cfg     PoolConfig
	handler Handler
	log     *zap.Logger

	stopReceiving context.CancelFunc
	stopWork      context.CancelFunc
	receiving     sync.WaitGroup // the receive loop
	handling      sync.WaitGroup // handlers in flight
}

// NewPool returns a pool; Start starts it.
func NewPool(c SQSAPI, cfg PoolConfig, h Handler, log *zap.Logger) *Pool {
	if cfg.WaitTime == 0 {
		cfg.WaitTime = 20 * time.Second
	}
	return &Pool{sqs: c, cfg: cfg, handler: h, log: log}
}

// Start begins receiving in the background and returns at once. Receiving
// also stops when ctx is cancelled; the work in hand then waits for Stop.
func (p *Pool) Start(ctx context.Context) error {
	if p.stopReceiving != nil {
		return errors.New("worker pool: started twice")
	}
	recvCtx, stopReceiving := context.WithCancel(ctx)
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	p.stopReceiving, p.stopWork = stopReceiving, stopWork
	p.receiving.Add(1)
	go func() {
		defer p.receiving.Done()
		defer recoverTo(p.log, "queue receiver")
		p.receive(recvCtx, workCtx)
	}()
	return nil
}

// Stop stops receiving and waits for the messages in hand until ctx is
// done; then their handlers' context is cancelled, and what they did not
// finish goes back to the queue (visibility 0) for another instance. It
// returns once every goroutine of the pool has ended.
func (p *Pool) Stop(ctx context.Context) error {
	if p.stopReceiving == nil {
		return nil
	}
	p.stopReceiving()
	p.receiving.Wait()
	done := make(chan struct{})
	go func() { p.handling.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.log.Warn("shutdown grace is over: handing back messages in flight")
		p.stopWork()
		<-done
	}
	p.stopWork()
	return nil
}

// receive takes messages while ctx lasts and starts a handler for each,
// with work as its context.
func (p *Pool) receive(ctx, work context.Context) {
	slots := make(chan struct{}, p.cfg.Concurrency)
	long := make(chan struct{}, p.cfg.Concurrency)
	failures := 0
	for ctx.Err() == nil {
		// Wait for one free slot, then take as many more as are free (up
		// to SQS's 10 a call).
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < 10 {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
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
			p.cfg.Metrics.Received(len(msgs))
		}
		for range n - len(msgs) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			p.cfg.Metrics.ReceiveFailed()
			backoff := receiveRetry.Delay(failures)
			p.log.Error("receive from queue failed", zap.Error(err), zap.Duration("retryIn", backoff))
			_ = retry.Sleep(ctx, backoff)
			continue
		}
		for _, m := range msgs {
			p.handling.Add(1)
			go func() {
				defer p.handling.Done()
				h := &hold{slots: slots, long: long}
				defer h.free()
				p.handle(work, m, h.detach)
			}()
		}
	}
}

// hold is one message's share of the pool: a slot, or, once its handler
// detached, a place among the long handlers, which leaves the slot to
// other messages.
type hold struct {
	slots, long chan struct{}
	mu          sync.Mutex
	detached    bool
	freed       bool
}

// detach moves the hold from its slot to a place among the long handlers,
// if one is free; it reports whether the hold is detached.
func (h *hold) detach() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.detached || h.freed {
		return h.detached
	}
	select {
	case h.long <- struct{}{}:
		h.detached = true
		<-h.slots
	default:
	}
	return h.detached
}

// free gives back what the hold has.
func (h *hold) free() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.freed {
		return
	}
	h.freed = true
	if h.detached {
		<-h.long
		return
	}
	<-h.slots
}

// handle runs the handler with a visibility heartbeat, then deletes the
// message, or hands it back.
func (p *Pool) handle(ctx context.Context, m types.Message, detach func() bool) {
	p.cfg.Metrics.InFlight(1)
	defer p.cfg.Metrics.InFlight(-1)
	msg := Message{ID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), Detach: detach}
	msg.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		defer recoverTo(p.log, "visibility heartbeat", zap.String("messageId", msg.ID))
		p.heartbeat(hbCtx, m.ReceiptHandle)
	}()
	res := p.run(ctx, msg)
	stopHeartbeat()
	hb.Wait()

	// Bookkeeping must finish even when ctx is over, within a few seconds
	// of what is left of the shutdown grace.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	switch {
	case res.Err != nil && ctx.Err() != nil:
		p.setVisibility(bctx, m.ReceiptHandle, 0) // hand back: another instance takes it now
		return
	case res.DeadLetter && p.cfg.DeadLetterURL != "":
		if _, err := p.sqs.SendMessage(bctx, &sqs.SendMessageInput{QueueUrl: aws.String(p.cfg.DeadLetterURL), MessageBody: m.Body}); err != nil {
			p.log.Warn("move message to the dead-letter queue failed; it will be retried", zap.String("messageId", msg.ID), zap.Error(err))
			p.setVisibility(bctx, m.ReceiptHandle, messageRetry.Delay(msg.ReceiveCount))
			return
		}
	case res.DeadLetter:
		// No dead-letter queue configured: leave it to the redrive policy,
		// as slowly as SQS allows.
		p.setVisibility(bctx, m.ReceiptHandle, 12*time.Hour)
		return
	case res.Err != nil:
		backoff := messageRetry.Delay(msg.ReceiveCount)
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

// run runs the handler; a panic is logged once, with its stack, and the
// message is retried like any failure.
func (p *Pool) run(ctx context.Context, msg Message) (res Result) {
	var panicked error
	// Deferred in this order: recoverInto (which must be the deferred
	// call itself for recover to work) runs first, then the result is set.
	defer func() {
		if panicked != nil {
			res = Result{Err: panicked}
		}
	}()
	defer recoverInto(&panicked, p.log, "message handler", zap.String("messageId", msg.ID), zap.Int("receiveCount", msg.ReceiveCount))
	return p.handler.Handle(ctx, msg)
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
