package devstack

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
)

// AWSConfig loads the SDK configuration from the environment, as the service
// does: AWS_REGION, the credentials, and AWS_ENDPOINT_URL_S3/_SQS/_DYNAMODB/
// _STS pointing at the local stand-ins.
func AWSConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "eu-west-1"
	}
	// DynamoDB Local's error responses fail the SDK's CRC32 check, which the
	// SDK reports on stderr; the service routes SDK logs to zap instead.
	cfg.Logger = logging.Nop{}
	return cfg, nil
}

// NewClients returns SDK clients for the local stack (S3 path-style, as
// MinIO needs).
func NewClients(cfg aws.Config) (Clients, *sts.Client) {
	return Clients{
		S3:       s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		SQS:      sqs.NewFromConfig(cfg),
		DynamoDB: dynamodb.NewFromConfig(cfg),
	}, sts.NewFromConfig(cfg)
}
