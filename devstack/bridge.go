package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"
)

// BridgeSQS is what the bridge needs of SQS.
type BridgeSQS interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Bridge receives MinIO's webhook notifications and sends each one to the
// SQS queue named like the event's bucket, rewritten to the JSON AWS S3 puts
// on a queue: eventSource "aws:s3", the region set, eventName without the
// "s3:" prefix, and the object key URL-encoded as AWS does it ('+' for a
// space, '/' kept). It answers the webhook only once the message is on the
// queue, so MinIO keeps (and retries) events the queue did not take.
//
// In AWS the bucket notifies the queue directly; nothing in the service
// depends on the bridge.
type Bridge struct {
	SQS    BridgeSQS
	Region string
	Log    *zap.Logger

	mu   sync.Mutex
	urls map[string]string // bucket → queue URL
}

// minioEvent is the part of MinIO's webhook payload the bridge reads.
type minioEvent struct {
	Records []struct {
		EventTime    string `json:"eventTime"`
		EventName    string `json:"eventName"`
		UserIdentity struct {
			PrincipalID string `json:"principalId"`
		} `json:"userIdentity"`
		RequestParameters struct {
			SourceIPAddress string `json:"sourceIPAddress"`
		} `json:"requestParameters"`
		ResponseElements map[string]string `json:"responseElements"`
		S3               struct {
			ConfigurationID string `json:"configurationId"`
			Bucket          struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key       string `json:"key"` // query-escaped, '/' as %2F
				Size      int64  `json:"size"`
				ETag      string `json:"eTag"`
				VersionID string `json:"versionId"`
				Sequencer string `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// awsRecord is one record of an AWS S3 event notification (event version 2.1).
type awsRecord struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"`
	EventName         string            `json:"eventName"`
	UserIdentity      map[string]string `json:"userIdentity"`
	RequestParameters map[string]string `json:"requestParameters"`
	ResponseElements  map[string]string `json:"responseElements"`
	S3                awsS3             `json:"s3"`
}

type awsS3 struct {
	SchemaVersion   string    `json:"s3SchemaVersion"`
	ConfigurationID string    `json:"configurationId"`
	Bucket          awsBucket `json:"bucket"`
	Object          awsObject `json:"object"`
}

type awsBucket struct {
	Name          string            `json:"name"`
	OwnerIdentity map[string]string `json:"ownerIdentity"`
	ARN           string            `json:"arn"`
}

type awsObject struct {
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	ETag      string `json:"eTag,omitempty"`
	VersionID string `json:"versionId,omitempty"`
	Sequencer string `json:"sequencer"`
}

// EncodeKey URL-encodes an object key the way S3 event notifications do.
func EncodeKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		w.WriteHeader(http.StatusOK) // health probe
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	var ev minioEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		b.Log.Warn("bridge: not an event", zap.Error(err))
		w.WriteHeader(http.StatusOK) // MinIO's own probes; nothing to forward
		return
	}
	for _, rec := range ev.Records {
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			b.Log.Warn("bridge: undecodable key", zap.String("key", rec.S3.Object.Key))
			continue
		}
		out := awsRecord{
			EventVersion:      "2.1",
			EventSource:       "aws:s3",
			AWSRegion:         b.Region,
			EventTime:         rec.EventTime,
			EventName:         strings.TrimPrefix(rec.EventName, "s3:"),
			UserIdentity:      map[string]string{"principalId": rec.UserIdentity.PrincipalID},
			RequestParameters: map[string]string{"sourceIPAddress": rec.RequestParameters.SourceIPAddress},
			ResponseElements: map[string]string{
				"x-amz-request-id": rec.ResponseElements["x-amz-request-id"],
				"x-amz-id-2":       rec.ResponseElements["x-amz-id-2"],
			},
			S3: awsS3{
				SchemaVersion:   "1.0",
				ConfigurationID: rec.S3.ConfigurationID,
				Bucket: awsBucket{
					Name:          rec.S3.Bucket.Name,
					OwnerIdentity: map[string]string{"principalId": rec.UserIdentity.PrincipalID},
					ARN:           "arn:aws:s3:::" + rec.S3.Bucket.Name,
				},
				Object: awsObject{
					Key:       EncodeKey(key),
					Size:      rec.S3.Object.Size,
					ETag:      rec.S3.Object.ETag,
					VersionID: rec.S3.Object.VersionID,
					Sequencer: rec.S3.Object.Sequencer,
				},
			},
		}
		msg, err := json.Marshal(map[string][]awsRecord{"Records": {out}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := b.send(r.Context(), rec.S3.Bucket.Name, string(msg)); err != nil {
			b.Log.Error("bridge: forward failed", zap.String("bucket", rec.S3.Bucket.Name), zap.String("key", key), zap.Error(err))
			http.Error(w, "forward failed", http.StatusBadGateway)
			return
		}
		b.Log.Debug("bridge: forwarded", zap.String("bucket", rec.S3.Bucket.Name), zap.String("key", key))
	}
	w.WriteHeader(http.StatusOK)
}

func (b *Bridge) send(ctx context.Context, bucket, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	qurl, err := b.queueURL(ctx, bucket)
	if err != nil {
		return err
	}
	_, err = b.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(qurl), MessageBody: aws.String(body)})
	if err != nil {
		return fmt.Errorf("send to %s: %w", qurl, err)
	}
	return nil
}

func (b *Bridge) queueURL(ctx context.Context, bucket string) (string, error) {
	b.mu.Lock()
	u, ok := b.urls[bucket]
	b.mu.Unlock()
	if ok {
		return u, nil
	}
	out, err := b.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(bucket)})
	if err != nil {
		return "", fmt.Errorf("queue for bucket %s: %w", bucket, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.urls == nil {
		b.urls = map[string]string{}
	}
	b.urls[bucket] = aws.ToString(out.QueueUrl)
	return b.urls[bucket], nil
}
