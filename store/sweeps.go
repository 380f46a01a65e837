package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"atomuploads/upload"
)

// AcquireSweep takes a sweep's lease (upload.SweepLease), creating its item the
// first time. A lease held by another is upload.ErrLeaseHeld. Renew,
// Release and Abandon work on it as on any lease.
func (s *Store) AcquireSweep(ctx context.Context, l upload.Lease) error {
	now := s.now()
	lo, le := leaseAttrs(l.Name)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(l.AtomID, l.UploadID),
		UpdateExpression:         aws.String("SET #lo = :me, #le = :exp"),
		ConditionExpression:      aws.String("attribute_not_exists(#lo) OR #le < :now OR #lo = :me"),
		ExpressionAttributeNames: map[string]string{"#lo": lo, "#le": le},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":  &types.AttributeValueMemberS{Value: l.Owner},
			":now": num(now.UnixMilli()),
			":exp": num(now.Add(l.TTL).UnixMilli()),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return upload.ErrLeaseHeld
	}
	if err != nil {
		return fmt.Errorf("acquire the %s sweep lease: %w", l.UploadID, dbError(err))
	}
	return nil
}

// Quiet calls fn with the ids of the uploads that are not terminal and
// have not changed since before, oldest change first, a page of the live
// index at a time, until fn returns an error or there are no more. The
// index is eventually consistent: fn reads each upload again before it
// acts.
func (s *Store) Quiet(ctx context.Context, before time.Time, fn func(atomID, id string) error) error {
	return s.scanIndex(ctx, "quiet uploads", indexLive, attrLive, attrProgressAt, before, fn)
}

// scanIndex hands fn the keys of the items of a sparse index whose
// partition attribute part is liveValue and whose sort attribute sort (unix
// ms) is before before, in sort order, a page at a time, until fn returns
// an error (returned as it is) or there are no more. what names the items
// in a query's error.
func (s *Store) scanIndex(ctx context.Context, what, index, part, sort string, before time.Time, fn func(atomID, id string) error) error {
	var start map[string]types.AttributeValue
	for {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                aws.String(s.table),
			IndexName:                aws.String(index),
			KeyConditionExpression:   aws.String("#p = :p AND #s < :before"),
			ExpressionAttributeNames: map[string]string{"#p": part, "#s": sort},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":p":      &types.AttributeValueMemberS{Value: liveValue},
				":before": num(before.UnixMilli()),
			},
			ExclusiveStartKey: start,
			Limit:             aws.Int32(100),
		})
		if err != nil {
			return fmt.Errorf("query %s: %w", what, dbError(err))
		}
		for _, item := range out.Items {
			a, _ := item[attrAtomID].(*types.AttributeValueMemberS)
			u, _ := item[attrUploadID].(*types.AttributeValueMemberS)
			if a == nil || u == nil {
				continue
			}
			if err := fn(a.Value, u.Value); err != nil {
				return err
			}
		}
		if out.LastEvaluatedKey == nil {
			return nil
		}
		start = out.LastEvaluatedKey
	}
}

// Touch marks the upload as changed now without changing it, so that it
// leaves the quiet uploads for a while (a sweep that acted on it).
func (s *Store) Touch(ctx context.Context, atomID, id string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       s.key(atomID, id),
		UpdateExpression:          aws.String("SET #pat = :now"),
		ConditionExpression:       aws.String("attribute_exists(#live)"),
		ExpressionAttributeNames:  map[string]string{"#pat": attrProgressAt, "#live": attrLive},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(s.now().UnixMilli())},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("touch upload %s: %w", id, dbError(err))
	}
	return nil
}
