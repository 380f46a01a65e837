package devstack_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"atomuploads/devstack"
	"atomuploads/devstack/stacktest"
)

// s3Event is the AWS S3 event notification shape, written from AWS's
// documentation independently of the bridge's own types.
type s3Event struct {
	Event   string `json:"Event"`
	Records []struct {
		EventVersion string `json:"eventVersion"`
		EventSource  string `json:"eventSource"`
		AWSRegion    string `json:"awsRegion"`
		EventName    string `json:"eventName"`
		S3           struct {
			Bucket struct {
				Name string `json:"name"`
				ARN  string `json:"arn"`
			} `json:"bucket"`
			Object struct {
				Key       string `json:"key"`
				Size      int64  `json:"size"`
				Sequencer string `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

func TestPutUnderUploadsProducesS3EventOnQueue(t *testing.T) {
	st := stacktest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	keys := map[string]int64{
		"uploads/atom-1/01JZ0000000000000000000000/parts/0": 11,
		"uploads/atom 2/a+b/x y":                            3,
	}
	for k, n := range keys {
		_, err := st.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(st.Bucket), Key: aws.String(k), Body: strings.NewReader(strings.Repeat("x", int(n))),
		})
		if err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	// Outside uploads/: the notification's prefix filter keeps it off the queue.
	if _, err := st.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(st.Bucket), Key: aws.String("other/x"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int64{}
	testEvents := 0
	for len(seen) < len(keys) && ctx.Err() == nil {
		out, err := st.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(st.QueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 2,
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range out.Messages {
			var ev s3Event
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatalf("message is not JSON: %v: %s", err, aws.ToString(m.Body))
			}
			if ev.Event == "s3:TestEvent" {
				testEvents++
				continue
			}
			if len(ev.Records) != 1 {
				t.Fatalf("got %d records, want 1: %s", len(ev.Records), aws.ToString(m.Body))
			}
			r := ev.Records[0]
			if r.EventSource != "aws:s3" || r.AWSRegion != st.AWS.Region || r.EventName != "ObjectCreated:Put" ||
				r.EventVersion == "" || r.S3.Bucket.Name != st.Bucket || r.S3.Bucket.ARN != "arn:aws:s3:::"+st.Bucket || r.S3.Object.Sequencer == "" {
				t.Errorf("record is not AWS-shaped: %+v", r)
			}
			seen[r.S3.Object.Key] = r.S3.Object.Size
		}
	}
	want := map[string]int64{
		"uploads/atom-1/01JZ0000000000000000000000/parts/0": 11,
		"uploads/atom+2/a%2Bb/x+y":                          3, // URL-encoded as AWS does: '+' for space, '/' kept
	}
	for k, n := range want {
		if got, ok := seen[k]; !ok || got != n {
			t.Errorf("key %q: got size %d (seen %v), want %d", k, got, ok, n)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("got keys %v, want %v", seen, want)
	}
	if testEvents != 1 {
		t.Errorf("got %d s3:TestEvent messages, want 1 (sent when the notification is set up)", testEvents)
	}
}

func TestEncodeKey(t *testing.T) {
	for in, want := range map[string]string{
		"uploads/a/b/parts/0": "uploads/a/b/parts/0",
		"a b+c/d":             "a+b%2Bc/d",
		"é&=?":                "%C3%A9%26%3D%3F",
	} {
		if got := devstack.EncodeKey(in); got != want {
			t.Errorf("EncodeKey(%q) = %q, want %q", in, got, want)
		}
	}
}
