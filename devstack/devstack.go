// Package devstack sets up the local AWS stand-ins that the service runs on
// in development and in tests: MinIO (S3 and STS), kumo (SQS) and DynamoDB
// Local, started by scripts/stack. It creates the bucket, the queue with its
// dead-letter queue, the progress table and the bucket's event notification,
// and it bridges MinIO's event webhook into SQS messages of the shape AWS S3
// sends (see Bridge).
//
// It is development tooling: the service never imports it.
package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"atomuploads/store"
)

// BridgeTargetARN is the notification target that scripts/stack configures
// in MinIO (MINIO_NOTIFY_WEBHOOK_*_BRIDGE): MinIO posts bucket events to the
// bridge, which forwards them to SQS.
const BridgeTargetARN = "arn:minio:sqs::BRIDGE:webhook"

// Resources names what Setup creates. The queue has the bucket's name: that
// is how the bridge finds the queue for a bucket's events, as an S3 bucket
// notification names its queue in AWS.
type Resources struct {
	Bucket          string // uploads land here; its queue is named the same
	OutputBucket    string // transcode outputs; optional
	Table           string // the progress table
	MaxReceiveCount int    // receives before a message moves to the DLQ; 0 means 5
	VisibilityTime  time.Duration
}

// Created is what Setup made.
type Created struct {
	QueueURL string
	DLQURL   string
}

// Clients are the AWS SDK clients Setup uses.
type Clients struct {
	S3       *s3.Client
	SQS      *sqs.Client
	DynamoDB *dynamodb.Client
}

// Setup creates the resources, idempotently: the bucket, the output bucket, the
// queue's dead-letter queue, the queue with its redrive policy, the bucket's
// ObjectCreated notification for uploads/ to the queue (through the bridge),
// and the progress table. Like AWS, it then puts an s3:TestEvent message on
// the queue.
func Setup(ctx context.Context, c Clients, r Resources) (Created, error) {
	var out Created
	if r.MaxReceiveCount == 0 {
		r.MaxReceiveCount = 5
	}
	if r.VisibilityTime == 0 {
		r.VisibilityTime = time.Minute
	}
	for _, b := range []string{r.Bucket, r.OutputBucket} {
		if b == "" {
			continue
		}
		if err := createBucket(ctx, c.S3, b); err != nil {
			return out, err
		}
	}
	// Production also has a lifecycle rule aborting abandoned multipart
	// uploads (README); MinIO refuses that rule, so it is not set here.
	dlq, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(r.Bucket + "-dlq"),
		Attributes: map[string]string{"MessageRetentionPeriod": "1209600"},
	})
	if err != nil {
		return out, fmt.Errorf("create dead-letter queue: %w", err)
	}
	out.DLQURL = aws.ToString(dlq.QueueUrl)
	attrs, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       dlq.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return out, fmt.Errorf("dead-letter queue ARN: %w", err)
	}
	redrive, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(r.MaxReceiveCount),
	})
	if err != nil {
		return out, err
	}
	q, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(r.Bucket),
		Attributes: map[string]string{
			"RedrivePolicy":     string(redrive),
			"VisibilityTimeout": strconv.Itoa(int(r.VisibilityTime.Seconds())),
		},
	})
	if err != nil {
		return out, fmt.Errorf("create queue: %w", err)
	}
	out.QueueURL = aws.ToString(q.QueueUrl)

	_, err = c.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(r.Bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{
			QueueConfigurations: []s3types.QueueConfiguration{{
				Id:       aws.String("atom-uploads"),
				QueueArn: aws.String(BridgeTargetARN),
				Events:   []s3types.Event{"s3:ObjectCreated:*"},
				Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{
					FilterRules: []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String("uploads/")}},
				}},
			}},
		},
	})
	if err != nil {
		return out, fmt.Errorf("notification of %s: %w", r.Bucket, err)
	}
	if err := sendTestEvent(ctx, c.SQS, out.QueueURL, r.Bucket); err != nil {
		return out, err
	}
	if r.Table != "" {
		if err := store.CreateTable(ctx, c.DynamoDB, r.Table); err != nil {
			return out, err
		}
	}
	return out, nil
}

func createBucket(ctx context.Context, c *s3.Client, name string) error {
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// sendTestEvent puts the message AWS S3 sends when a notification is set up.
func sendTestEvent(ctx context.Context, c *sqs.Client, queueURL, bucket string) error {
	body, err := json.Marshal(map[string]string{
		"Service":   "Amazon S3",
		"Event":     "s3:TestEvent",
		"Time":      time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"Bucket":    bucket,
		"RequestId": "DEVSTACK",
		"HostId":    "devstack",
	})
	if err != nil {
		return err
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(string(body))})
	if err != nil {
		return fmt.Errorf("send test event: %w", err)
	}
	return nil
}
