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

// DueForCleanup calls fn with the ids of the uploads that ended before
// before and whose parts may go but have not been deleted yet (the sparse
// index cleanup-cleanupAt), longest ended first, a page at a time, until
// fn returns an error or there are no more. The index is eventually
// consistent: fn reads each upload again before it acts.
func (s *Store) DueForCleanup(ctx context.Context, before time.Time, fn func(atomID, id string) error) error {
	return s.scanIndex(ctx, "uploads due for clean-up", indexCleanup, attrCleanup, attrCleanupAt, before, fn)
}

// CleanedUp takes the upload out of the index of uploads due for clean-up,
// once its parts are gone (the write that set partsDeleted keeps it in, so
// that a clean-up cut short is done again). An upload that no longer
// exists is not an error.
func (s *Store) CleanedUp(ctx context.Context, atomID, id string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(atomID, id),
		UpdateExpression:         aws.String("REMOVE #c, #at"),
		ConditionExpression:      aws.String("attribute_exists(uploadId)"),
		ExpressionAttributeNames: map[string]string{"#c": attrCleanup, "#at": attrCleanupAt},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("record the clean-up of upload %s: %w", id, dbError(err))
	}
	return nil
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
