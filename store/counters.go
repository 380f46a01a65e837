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

// counterAtom is the partition of the items that count things across the
// service (YouTube sessions started per Pacific day), one item a counter.
// No atom can have this id, and these items are never live uploads.
const counterAtom = "_counters"

// counterTTL keeps a counter's item a while after its day, then lets
// DynamoDB's TTL remove it.
const counterTTL = 72 * time.Hour

// Admit counts one more under the named counter if it is below limit, and
// reports whether it did: a conditional ADD, so that any number of
// instances admit at most limit in all.
func (s *Store) Admit(ctx context.Context, counter string, limit int) (bool, error) {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(counterAtom, counter),
		UpdateExpression:         aws.String("ADD #n :one SET #exp = if_not_exists(#exp, :exp)"),
		ConditionExpression:      aws.String("attribute_not_exists(#n) OR #n < :limit"),
		ExpressionAttributeNames: map[string]string{"#n": "n", "#exp": attrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one":   num(1),
			":limit": num(int64(limit)),
			":exp":   num(s.now().Add(counterTTL).Unix()),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("count %s: %w", counter, dbError(err))
	}
	return true, nil
}

// Refund gives back one of the named counter's admissions, for one whose
// purpose failed (a YouTube session that was refused). It never takes the
// counter below zero.
func (s *Store) Refund(ctx context.Context, counter string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       s.key(counterAtom, counter),
		UpdateExpression:          aws.String("ADD #n :minus"),
		ConditionExpression:       aws.String("#n > :zero"),
		ExpressionAttributeNames:  map[string]string{"#n": "n"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":minus": num(-1), ":zero": num(0)},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("refund %s: %w", counter, dbError(err))
	}
	return nil
}
