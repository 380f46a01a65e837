package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"atomuploads/upload"
)

// leaseAttrs are the owner and expiry attributes of the named lease.
func leaseAttrs(name upload.LeaseName) (owner, expiry string) {
	return string(name) + "LeaseOwner", string(name) + "LeaseExpiry"
}

// UpdateHolding is Update on condition that l's owner still holds the
// lease; the write also renews it. A lost lease is upload.ErrLeaseLost.
func (s *Store) UpdateHolding(ctx context.Context, l upload.Lease, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return s.update(ctx, l.AtomID, l.UploadID, &l, false, fn)
}

// Acquire takes the lease for l.Owner until l.TTL from now, if it is free,
// expired or already l.Owner's, and returns the record. takenOver reports
// that the lease was taken from a holder whose lease expired (it did not
// release it, so what it recorded may lag behind what it did). A lease held
// by another is upload.ErrLeaseHeld.
func (s *Store) Acquire(ctx context.Context, l upload.Lease) (u *upload.Upload, takenOver bool, err error) {
	now := s.now()
	lo, le := leaseAttrs(l.Name)
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(l.AtomID, l.UploadID),
		UpdateExpression:         aws.String("SET #lo = :me, #le = :exp"),
		ConditionExpression:      aws.String("attribute_exists(uploadId) AND (attribute_not_exists(#lo) OR #le < :now OR #lo = :me)"),
		ExpressionAttributeNames: map[string]string{"#lo": lo, "#le": le},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":  &types.AttributeValueMemberS{Value: l.Owner},
			":now": num(now.UnixMilli()),
			":exp": num(now.Add(l.TTL).UnixMilli()),
		},
		// The record fields are the same before and after; the old item
		// also tells whether an expired holder was there.
		ReturnValues:                        types.ReturnValueAllOld,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if ccf.Item == nil {
			return nil, false, upload.Errorf(upload.ENOTFOUND, "atom %s has no upload %s", l.AtomID, l.UploadID)
		}
		return nil, false, upload.ErrLeaseHeld
	}
	if err != nil {
		return nil, false, fmt.Errorf("acquire %s lease of %s: %w", l.Name, l.UploadID, dbError(err))
	}
	prev, _ := out.Attributes[lo].(*types.AttributeValueMemberS)
	u, err = fromAttrs(out.Attributes)
	return u, prev != nil && prev.Value != l.Owner, err
}

// Renew extends l's lease to l.TTL from now; upload.ErrLeaseLost if l.Owner
// no longer holds it.
func (s *Store) Renew(ctx context.Context, l upload.Lease) error {
	now := s.now()
	lo, le := leaseAttrs(l.Name)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(l.AtomID, l.UploadID),
		UpdateExpression:         aws.String("SET #le = :exp"),
		ConditionExpression:      aws.String("#lo = :me AND #le > :now"),
		ExpressionAttributeNames: map[string]string{"#lo": lo, "#le": le},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":  &types.AttributeValueMemberS{Value: l.Owner},
			":now": num(now.UnixMilli()),
			":exp": num(now.Add(l.TTL).UnixMilli()),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return upload.ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("renew %s lease of %s: %w", l.Name, l.UploadID, dbError(err))
	}
	return nil
}

// Release gives up l's lease, vouching for the record: the next holder
// does not count as a takeover. Releasing a lease one does not hold is not
// an error.
func (s *Store) Release(ctx context.Context, l upload.Lease) error {
	_, err := s.release(ctx, l, "", nil)
	return err
}

// ReleaseIfMissing gives up l's lease only while part n is not complete,
// and reports whether it did. When the part has arrived it keeps the lease
// and reports false: the holder must go on, so that a part completed during
// its turn is never left without a writer. A lease one does not hold counts
// as released.
func (s *Store) ReleaseIfMissing(ctx context.Context, l upload.Lease, n int) (bool, error) {
	return s.release(ctx, l, " AND NOT contains(completeParts, :p)", map[string]types.AttributeValue{":p": num(int64(n))})
}

func (s *Store) release(ctx context.Context, l upload.Lease, cond string, values map[string]types.AttributeValue) (bool, error) {
	lo, le := leaseAttrs(l.Name)
	if values == nil {
		values = map[string]types.AttributeValue{}
	}
	values[":me"] = &types.AttributeValueMemberS{Value: l.Owner}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key(l.AtomID, l.UploadID),
		UpdateExpression:                    aws.String("REMOVE #lo, #le"),
		ConditionExpression:                 aws.String("#lo = :me" + cond),
		ExpressionAttributeNames:            map[string]string{"#lo": lo, "#le": le},
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if owned, _ := ccf.Item[lo].(*types.AttributeValueMemberS); owned != nil && owned.Value == l.Owner {
			return false, nil // still ours: the condition did not hold
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("release %s lease of %s: %w", l.Name, l.UploadID, dbError(err))
	}
	return true, nil
}

// Abandon gives up l's lease without vouching for the record: the lease is
// free at once, but the next Acquire reports it as taken over, as if it had
// expired. A holder that stops after an error abandons, so that the next
// one checks what the record cannot know (what YouTube committed).
// Abandoning a lease one does not hold is not an error.
func (s *Store) Abandon(ctx context.Context, l upload.Lease) error {
	lo, le := leaseAttrs(l.Name)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(l.AtomID, l.UploadID),
		UpdateExpression:         aws.String("SET #le = :zero"),
		ConditionExpression:      aws.String("#lo = :me"),
		ExpressionAttributeNames: map[string]string{"#lo": lo, "#le": le},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":   &types.AttributeValueMemberS{Value: l.Owner},
			":zero": num(0),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("abandon %s lease of %s: %w", l.Name, l.UploadID, dbError(err))
	}
	return nil
}
