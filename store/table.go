package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names of the key schema, the TTL and the index of live uploads.
const (
	attrAtomID     = "atomId"     // partition key (S)
	attrUploadID   = "uploadId"   // sort key (S): a ULID, so it sorts by creation time
	attrExpiresAt  = "expiresAt"  // TTL (N, unix seconds)
	attrLive       = "live"       // indexLive partition key (S): set only while the upload is not terminal
	attrProgressAt = "progressAt" // indexLive sort key (N, unix ms): the upload's last change
	attrLastPartAt = "lastPartAt" // N, unix ms: when a part last completed
	attrCleanup    = "cleanup"    // indexCleanup partition key (S): set while the upload's parts are due to be deleted
	attrCleanupAt  = "cleanupAt"  // indexCleanup sort key (N, unix ms): when the upload ended
	// attrYouTubeRead (N): the relay has claimed parts [0, N)
	// (upload.Upload.YouTubeReadParts); their pins never change again.
	attrYouTubeRead = "youtubeReadParts"
)

// indexLive is the sparse global secondary index of the uploads that are
// not terminal, by their last change: the reconciler's query costs what the
// live uploads cost, however many finished ones the table holds. Keys only:
// the reconciler reads each candidate consistently from the table.
const indexLive = "live-progressAt"

// indexCleanup is the sparse global secondary index of the uploads that
// are over and whose parts are still to be deleted, by when they ended:
// the clean-up's query costs what those few cost, however many finished
// and cleaned records the table holds. Keys only, like indexLive.
const indexCleanup = "cleanup-cleanupAt"

// liveValue is the one value of attrLive, and of attrCleanup.
const liveValue = "1"

// TableAPI is what CreateTable needs of DynamoDB.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// CreateTable creates the progress table with the schema described in the
// package comment (on-demand capacity, TTL on expiresAt) and waits until it
// is active. An existing table is left as it is. Production creates the table
// with its infrastructure templates; this is for local stacks and tests.
func CreateTable(ctx context.Context, db TableAPI, name string) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrAtomID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrUploadID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrLive), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrProgressAt), AttributeType: types.ScalarAttributeTypeN},
			{AttributeName: aws.String(attrCleanup), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrCleanupAt), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrAtomID), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrUploadID), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(indexLive),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(attrLive), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrProgressAt), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}, {
			IndexName: aws.String(indexCleanup),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(attrCleanup), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrCleanupAt), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(db)
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("describe TTL of %s: %w", name, err)
	}
	if d := ttl.TimeToLiveDescription; d != nil && (d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		return nil
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrExpiresAt),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("enable TTL on %s: %w", name, err)
	}
	return nil
}
