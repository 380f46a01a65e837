// Package stacktest gives each test its own resources on the local stack that
// scripts/test starts (scripts/stack): a fresh bucket, queue, dead-letter
// queue and progress table, with the real AWS SDK clients pointed at the
// stand-ins.
package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"atomuploads/devstack"
)

// Stack is one test's slice of the local stack.
type Stack struct {
	AWS      aws.Config
	S3       *s3.Client
	SQS      *sqs.Client
	DynamoDB *dynamodb.Client
	STS      *sts.Client

	Bucket       string
	OutputBucket string
	Table        string
	QueueURL     string
	DLQURL       string
}

// Options tune New.
type Options struct {
	MaxReceiveCount int           // default 5
	VisibilityTime  time.Duration // default 1 minute
}

// New creates fresh, uniquely named resources on the running local stack. It
// fails the test when the stack is not running: integration tests need
// scripts/test (or scripts/stack start) and are never skipped there. Only
// `go test -short`, the explicit request for the stack-free tests alone,
// skips them.
func New(tb testing.TB, opts ...Options) *Stack {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the local AWS stack; -short runs only the stack-free tests")
	}
	if os.Getenv("ATOM_UPLOADS_STACK") == "" || os.Getenv("AWS_ENDPOINT_URL_S3") == "" {
		tb.Fatal("this integration test needs the local AWS stack: run ./scripts/test " +
			"(or start one with scripts/stack start DIR PORT and source DIR/env)")
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := devstack.AWSConfig(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	clients, stsc := devstack.NewClients(cfg)
	name := UniqueName("t")
	r := devstack.Resources{
		Bucket:          name,
		OutputBucket:    name + "-out",
		Table:           name,
		MaxReceiveCount: o.MaxReceiveCount,
		VisibilityTime:  o.VisibilityTime,
	}
	created, err := devstack.Setup(ctx, clients, r)
	if err != nil {
		tb.Fatalf("set up local stack resources: %v", err)
	}
	return &Stack{
		AWS:          cfg,
		S3:           clients.S3,
		SQS:          clients.SQS,
		DynamoDB:     clients.DynamoDB,
		STS:          stsc,
		Bucket:       r.Bucket,
		OutputBucket: r.OutputBucket,
		Table:        r.Table,
		QueueURL:     created.QueueURL,
		DLQURL:       created.DLQURL,
	}
}

// UniqueName returns prefix followed by random lowercase hex: valid as a
// bucket, queue and table name.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
