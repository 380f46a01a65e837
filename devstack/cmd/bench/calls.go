package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"atomuploads/devstack"
)

// calls counts AWS SDK operations by "Service.Operation", through a
// middleware at the start of every client's stack (each operation once,
// however many times the SDK retries it), when they return. A
// ReceiveMessage that returned no message counts as
// "SQS.ReceiveMessageEmpty": its cost is time (an idle long poll), not work.
type calls struct {
	mu sync.Mutex
	n  map[string]int64
}

func newCalls() *calls { return &calls{n: map[string]int64{}} }

func (c *calls) add(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

// get returns the count of one operation.
func (c *calls) get(op string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// snapshot returns the counts so far.
func (c *calls) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// middleware is the counting step, for config.WithAPIOptions or a client's
// APIOptions.
func (c *calls) middleware(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("BenchCallCount",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			op := awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
			if r, ok := out.Result.(*sqs.ReceiveMessageOutput); ok && err == nil && len(r.Messages) == 0 {
				op += "Empty"
			}
			c.add(op)
			return out, md, err
		}), middleware.After)
}

// counted returns clients like devstack.NewClients' that count their calls.
func counted(cfg aws.Config, c *calls) devstack.Clients {
	cfg = cfg.Copy()
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), c.middleware)
	return devstack.Clients{
		S3:       s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		SQS:      sqs.NewFromConfig(cfg),
		DynamoDB: dynamodb.NewFromConfig(cfg),
	}
}

// byService sums counts by service ("DynamoDB", "S3", "SQS").
func byService(n map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for op, v := range n {
		svc, _, _ := strings.Cut(op, ".")
		out[svc] += v
	}
	return out
}

// perUnit formats counts divided by units, the service's total first, then
// its operations, e.g. "DynamoDB 310 (UpdateItem 200, GetItem 110)".
func perUnit(n map[string]int64, units float64, svc string) string {
	total := float64(byService(n)[svc]) / units
	var ops []string
	for _, op := range slices.Sorted(maps.Keys(n)) {
		if s, name, _ := strings.Cut(op, "."); s == svc && n[op] > 0 {
			ops = append(ops, fmt.Sprintf("%s %s", name, num(float64(n[op])/units)))
		}
	}
	return fmt.Sprintf("%s %s (%s)", svc, num(total), strings.Join(ops, ", "))
}

// num formats a count with few digits: 0.25, 3.5, 12, 1,234.
func num(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.2f", v)
	case v < 10:
		return fmt.Sprintf("%.1f", v)
	case v < 1000:
		return fmt.Sprintf("%.0f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
