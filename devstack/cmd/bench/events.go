package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"atomuploads/devstack"
	"atomuploads/store"
	"atomuploads/upload"
)

// (d) part events per second: the service's worker (in this process,
// configured as the service is by default: 16 messages at once) against a
// bare loop that makes the AWS calls a part event needs, at the same
// concurrency, on the same stack, in the same run. Each event is the last
// (1 KiB) part of a two-part upload with an s3Bucket destination only, so
// it is a part event and nothing else: no relay, no reassembly.

// eventModes are the three loops of a (d) run.
const (
	modeService = "service"
	modeBare4   = "bare4" // receive, HeadObject, the conditional UpdateItem, delete
	modeBare6   = "bare6" // the service's calls: the same, the GetItem of the record first and the pin of the part's ETag
)

// events is one run of (d): the service and both bare loops, each on
// fresh resources with the same events, all set up first so that the
// three loops run back to back, in an order that alternates from run to
// run.
func (b *bench) events(ctx context.Context, run int) (obs, error) {
	modes := []string{modeService, modeBare4, modeBare6}
	if run%2 == 1 {
		modes = []string{modeBare6, modeBare4, modeService}
	}
	type setup struct {
		r  devstack.Resources
		c  devstack.Created
		db *store.Store
	}
	setups := map[string]setup{}
	defer func() {
		for _, s := range setups {
			b.cleanup(s.r, s.c)
		}
	}()
	for _, mode := range modes {
		r, c, err := b.resources(ctx, "bench-d")
		if err != nil {
			return nil, err
		}
		setups[mode] = setup{r, c, store.New(b.clients.DynamoDB, r.Table, 0)}
		if err := b.eventsSetup(ctx, r, setups[mode].db); err != nil {
			return nil, err
		}
	}
	want := b.f.events + 1 // and S3's test event
	for _, mode := range modes {
		if err := b.queueHolds(ctx, setups[mode].c.QueueURL, want, time.Minute); err != nil {
			return nil, err
		}
	}
	o := obs{}
	for _, mode := range modes {
		s := setups[mode]
		rate, perEvent, cpu, err := b.eventsOf(ctx, mode, run, s.r, s.c, s.db)
		if err != nil {
			return nil, fmt.Errorf("(d) %s: %w", mode, err)
		}
		o[mode] = rate
		o[mode+".calls"] = perEvent
		for k, v := range cpu {
			o[mode+"."+k] = v
		}
	}
	o["ratio4"] = o[modeService] / o[modeBare4]
	o["ratio6"] = o[modeService] / o[modeBare6]
	return o, nil
}

// eventsSetup makes the uploads and puts the part of each that makes its
// event.
func (b *bench) eventsSetup(ctx context.Context, r devstack.Resources, db *store.Store) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for range b.f.events {
		g.Go(func() error {
			u, err := b.newUploadOf(gctx, db, r.Bucket, b.f.partSize+1024, b.f.partSize, upload.DestinationRequest{Type: upload.S3Bucket})
			if err != nil {
				return err
			}
			_, err = b.clients.S3.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(u.PartKey(1)), Body: bytes.NewReader(make([]byte, 1024))})
			return err
		})
	}
	return g.Wait()
}

// eventsOf runs one loop over the events; it returns events per second,
// AWS calls per event and where the CPU went.
func (b *bench) eventsOf(ctx context.Context, mode string, run int, r devstack.Resources, c devstack.Created, db *store.Store) (float64, float64, obs, error) {
	want := b.f.events + 1
	cpu := startCPU()
	var (
		elapsed time.Duration
		n       map[string]int64
		err     error
	)
	switch mode {
	case modeService:
		stopProfile, err := b.profile(fmt.Sprintf("d-service-run%d", run+1))
		if err != nil {
			return 0, 0, nil, err
		}
		start := time.Now()
		w := b.startWorker(r, c, nil)
		for w.calls.get("SQS.DeleteMessage") < int64(want) {
			if time.Since(start) > 10*time.Minute {
				w.stop()
				stopProfile()
				return 0, 0, nil, errors.New("the service did not handle every event in 10 minutes")
			}
			time.Sleep(5 * time.Millisecond)
		}
		elapsed = time.Since(start)
		stopProfile()
		w.stop()
		n = w.calls.snapshot()
	default:
		counts := newCalls()
		elapsed, err = bareEvents(ctx, counted(b.aws, counts), r, c, want, mode == modeBare6)
		if err != nil {
			return 0, 0, nil, err
		}
		n = counts.snapshot()
	}
	used := cpu.stop(nil)
	// Every event's effect is in the table.
	seen := 0
	_, err = db.List(ctx, "bench", "", nil, b.f.events+1, func(u *upload.Upload) error {
		seen++
		if !u.Completed[1] {
			return fmt.Errorf("%s left part 1 of upload %s incomplete", mode, u.ID)
		}
		return nil
	})
	if err != nil {
		return 0, 0, nil, err
	}
	if seen != b.f.events {
		return 0, 0, nil, fmt.Errorf("%d uploads in the table, want %d", seen, b.f.events)
	}
	var total int64
	for _, v := range n {
		total += v
	}
	return float64(want) / elapsed.Seconds(), float64(total) / float64(want), used, nil
}

// profile starts a CPU profile of this process into the profile
// directory (when one is set); the returned func stops it.
func (b *bench) profile(name string) (func(), error) {
	if b.f.profileDir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(b.f.profileDir, name+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// bareEvents is the bare loop: one receiver that fills 16 slots, up to 10
// messages a call, as the service's pool does; each message: HeadObject of
// the part, the conditional UpdateItem that marks it complete (the
// service's, with the record returned), DeleteMessage; all (the
// service's calls, bare) adds the pin of the part's ETag (store.PinPart's
// conditional write) before it, and the
// consistent GetItem of the record first. It returns when want messages
// are done.
func bareEvents(ctx context.Context, cl devstack.Clients, r devstack.Resources, c devstack.Created, want int, all bool) (time.Duration, error) {
	const concurrency = 16
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, concurrency)
	finished := make(chan struct{})
	var (
		done     atomic.Int64
		handlers sync.WaitGroup
		receiver sync.WaitGroup
	)
	start := time.Now()
	receiver.Add(1)
	go func() {
		defer receiver.Done()
		for rctx.Err() == nil {
			select {
			case slots <- struct{}{}:
			case <-rctx.Done():
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
			out, err := cl.SQS.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
				QueueUrl: aws.String(c.QueueURL), MaxNumberOfMessages: int32(n), WaitTimeSeconds: 20, VisibilityTimeout: 60,
				MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
			})
			var msgs []sqstypes.Message
			if err == nil {
				msgs = out.Messages
			}
			for range n - len(msgs) {
				<-slots
			}
			if err != nil {
				if rctx.Err() == nil {
					cancel(err)
				}
				return
			}
			for _, m := range msgs {
				handlers.Add(1)
				go func() {
					defer handlers.Done()
					defer func() { <-slots }()
					if err := bareEvent(rctx, cl, r, c, m, all); err != nil {
						cancel(err)
						return
					}
					if done.Add(1) == int64(want) {
						close(finished)
					}
				}()
			}
		}
	}()
	var err error
	select {
	case <-finished:
	case <-rctx.Done():
		err = context.Cause(rctx)
	case <-time.After(10 * time.Minute):
		err = errors.New("the bare loop did not handle every event in 10 minutes")
	}
	elapsed := time.Since(start)
	cancel(nil)
	receiver.Wait()
	handlers.Wait()
	return elapsed, err
}

// bareEvent handles one message of the bare loop.
func bareEvent(ctx context.Context, cl devstack.Clients, r devstack.Resources, c devstack.Created, m sqstypes.Message, all bool) error {
	var ev struct {
		Event   string
		Records []struct {
			S3 struct {
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
		return err
	}
	if ev.Event != "s3:TestEvent" {
		if len(ev.Records) != 1 {
			return fmt.Errorf("an event with %d records", len(ev.Records))
		}
		key, err := url.QueryUnescape(ev.Records[0].S3.Object.Key)
		if err != nil {
			return err
		}
		f := strings.Split(key, "/") // uploads/<atomId>/<uploadId>/parts/<n>
		if len(f) != 5 {
			return fmt.Errorf("key %q", key)
		}
		n, err := strconv.Atoi(f[4])
		if err != nil {
			return err
		}
		k := map[string]ddbtypes.AttributeValue{
			"atomId": &ddbtypes.AttributeValueMemberS{Value: f[1]}, "uploadId": &ddbtypes.AttributeValueMemberS{Value: f[2]},
		}
		if all {
			if _, err := cl.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.Table), Key: k, ConsistentRead: aws.Bool(true)}); err != nil {
				return err
			}
		}
		head, err := cl.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(key)})
		if err != nil {
			return err
		}
		if all {
			// store.PinPart's write.
			if _, err := cl.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: aws.String(r.Table),
				Key: map[string]ddbtypes.AttributeValue{
					"atomId": &ddbtypes.AttributeValueMemberS{Value: "_parts#" + f[2]}, "uploadId": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("%05d", n)},
				},
				UpdateExpression:         aws.String("SET etag = :etag, checksumSHA256 = :sum, #size = :size, pinnedAtom = :atom, createdAt = :created"),
				ConditionExpression:      aws.String("attribute_not_exists(etag)"),
				ExpressionAttributeNames: map[string]string{"#size": "size"},
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
					":etag":    &ddbtypes.AttributeValueMemberS{Value: aws.ToString(head.ETag)},
					":sum":     &ddbtypes.AttributeValueMemberS{Value: aws.ToString(head.ChecksumSHA256)},
					":size":    &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(aws.ToInt64(head.ContentLength), 10)},
					":atom":    &ddbtypes.AttributeValueMemberS{Value: f[1]},
					":created": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().UnixMilli(), 10)},
				},
				ReturnValuesOnConditionCheckFailure: ddbtypes.ReturnValuesOnConditionCheckFailureAllOld,
			}); err != nil {
				return err
			}
		}
		// store.CompletePart's write.
		if _, err := cl.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                aws.String(r.Table),
			Key:                      k,
			UpdateExpression:         aws.String("ADD completeParts :n, advances :one SET progressAt = :now"),
			ConditionExpression:      aws.String("attribute_exists(uploadId) AND NOT (#status IN (:cancelled, :failed))"),
			ExpressionAttributeNames: map[string]string{"#status": "status"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":n":         &ddbtypes.AttributeValueMemberNS{Value: []string{strconv.Itoa(n)}},
				":one":       &ddbtypes.AttributeValueMemberN{Value: "1"},
				":now":       &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().UnixMilli(), 10)},
				":cancelled": &ddbtypes.AttributeValueMemberS{Value: string(upload.StatusCancelled)},
				":failed":    &ddbtypes.AttributeValueMemberS{Value: string(upload.StatusFailed)},
			},
			ReturnValues:                        ddbtypes.ReturnValueAllNew,
			ReturnValuesOnConditionCheckFailure: ddbtypes.ReturnValuesOnConditionCheckFailureAllOld,
		}); err != nil {
			return err
		}
	}
	_, err := cl.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(c.QueueURL), ReceiptHandle: m.ReceiptHandle})
	return err
}
