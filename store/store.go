// Package store keeps upload records in the DynamoDB progress table.
//
// # Table
//
// One item per upload:
//
//	atomId       S   partition key
//	uploadId     S   sort key; a ULID, so an atom's uploads sort by creation
//	version      N   optimistic lock of the record fields below
//	filename, size, contentType, status, error, createdAt, updatedAt,
//	region, bucket, partSize, assembled, destinations (L of M)
//	completeParts NS part numbers in S3 with the planned size; only ever grows (ADD)
//	<name>LeaseOwner S, <name>LeaseExpiry N (unix ms)
//	             leases: "youtube" (the one writer of the resumable session),
//	             "assembly" (the one reassembler), "asset" (the one atom API call)
//	expiresAt    N   TTL attribute (unix seconds), createdAt + table.retention
//
// "One upload" is GetItem(atomId, uploadId) with a consistent read; "an
// atom's uploads, newest first" is Query(atomId) with ScanIndexForward=false.
// There is no index. Billing is on demand.
//
// Every write is conditional: create on attribute_not_exists, record updates
// on the version read, part completion on the upload being alive, lease
// writes on the lease being free, expired or held by the writer, and writes
// made while holding a lease on still holding it. A lost race comes back as
// an ECONFLICT domain error (ErrLeaseHeld, ErrLeaseLost, or a version
// conflict after retries), never as an AWS error.
//
// The items hold no secret: temporary credentials are never stored, and the
// YouTube destination keeps its resumable session only as the sealed handle
// of package youtube (the URI, a capability, encrypted with a key derived
// from the OAuth2 client secret), which another instance needs to resume
// the session. The API never renders it and nothing logs it.
//
// IAM: dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem and
// dynamodb:Query on the table.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"atomuploads/upload"
)

// DynamoDBAPI is what the store needs of DynamoDB.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Leases of an upload.
const (
	LeaseYouTube  = "youtube"
	LeaseAssembly = "assembly"
	LeaseAsset    = "asset"
)

// Domain errors of lost races.
var (
	ErrLeaseHeld = upload.Errorf(upload.ECONFLICT, "another worker holds the lease")
	ErrLeaseLost = upload.Errorf(upload.ECONFLICT, "the lease was lost to another worker")
)

// maxConflictRetries bounds the read-modify-write loop of Update.
const maxConflictRetries = 10

// Store is the progress table.
type Store struct {
	db        DynamoDBAPI
	table     string
	retention time.Duration
	now       func() time.Time
}

// New returns a store on the named table. Records expire retention after
// creation (0 keeps them).
func New(db DynamoDBAPI, table string, retention time.Duration) *Store {
	return &Store{db: db, table: table, retention: retention, now: time.Now}
}

func (s *Store) key(atomID, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrAtomID:   &types.AttributeValueMemberS{Value: atomID},
		attrUploadID: &types.AttributeValueMemberS{Value: id},
	}
}

// Create stores a new upload; an existing id is an ECONFLICT.
func (s *Store) Create(ctx context.Context, u *upload.Upload) error {
	it := toItem(u)
	if s.retention > 0 {
		it.ExpiresAt = u.CreatedAt.Add(s.retention).Unix()
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return fmt.Errorf("encode upload %s: %w", u.ID, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                av,
		ConditionExpression: aws.String("attribute_not_exists(uploadId)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return upload.Errorf(upload.ECONFLICT, "upload %s already exists", u.ID)
	}
	if err != nil {
		return fmt.Errorf("create upload %s: %w", u.ID, dbError(err))
	}
	return nil
}

// Get returns one upload, read consistently; ENOTFOUND when the atom has no
// such upload.
func (s *Store) Get(ctx context.Context, atomID, id string) (*upload.Upload, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            s.key(atomID, id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get upload %s: %w", id, dbError(err))
	}
	if out.Item == nil {
		return nil, upload.Errorf(upload.ENOTFOUND, "atom %s has no upload %s", atomID, id)
	}
	return fromAttrs(out.Item)
}

// List returns up to limit uploads of the atom, newest first.
func (s *Store) List(ctx context.Context, atomID string, limit int) ([]*upload.Upload, error) {
	var (
		uploads []*upload.Upload
		start   map[string]types.AttributeValue
	)
	for len(uploads) < limit {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(s.table),
			KeyConditionExpression: aws.String("atomId = :a"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":a": &types.AttributeValueMemberS{Value: atomID},
			},
			ScanIndexForward:  aws.Bool(false),
			Limit:             aws.Int32(int32(limit - len(uploads))),
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, fmt.Errorf("list uploads of %s: %w", atomID, dbError(err))
		}
		for _, av := range out.Items {
			u, err := fromAttrs(av)
			if err != nil {
				return nil, err
			}
			uploads = append(uploads, u)
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		start = out.LastEvaluatedKey
	}
	return uploads, nil
}

// Update reads the upload, applies fn, settles the status and writes the
// record back on condition that nobody changed it in between; a conflict is
// retried with a fresh read (fn runs again). An error from fn is returned as
// it is and nothing is written.
func (s *Store) Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return s.update(ctx, atomID, id, nil, fn)
}

// Holding names a lease that a write requires and renews.
type Holding struct {
	Lease string
	Owner string
	TTL   time.Duration
}

// UpdateHolding is Update on condition that owner still holds the lease; the
// write also renews it. A lost lease is ErrLeaseLost.
func (s *Store) UpdateHolding(ctx context.Context, atomID, id string, h Holding, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return s.update(ctx, atomID, id, &h, fn)
}

func (s *Store) update(ctx context.Context, atomID, id string, h *Holding, fn func(*upload.Upload) error) (*upload.Upload, error) {
	for attempt := 0; ; attempt++ {
		u, err := s.Get(ctx, atomID, id)
		if err != nil {
			return nil, err
		}
		if err := fn(u); err != nil {
			return nil, err
		}
		u.Settle(s.now())
		err = s.write(ctx, u, h)
		if err == nil {
			u.Version++
			return u, nil
		}
		if !errors.Is(err, errVersion) {
			return nil, err
		}
		if attempt == maxConflictRetries {
			return nil, upload.Errorf(upload.ECONFLICT, "upload %s is changing too often to update; try again", id)
		}
		if err := sleep(ctx, time.Duration(5+rand.IntN(20*(attempt+1)))*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

var errVersion = errors.New("version changed")

// write stores the mutable record fields of u if its version is unchanged
// (and, with h, the lease is still held, which it renews).
func (s *Store) write(ctx context.Context, u *upload.Upload, h *Holding) error {
	it := toItem(u)
	dests, err := attributevalue.Marshal(it.Destinations)
	if err != nil {
		return fmt.Errorf("encode destinations of %s: %w", u.ID, err)
	}
	names := map[string]string{"#status": "status", "#error": "error"}
	values := map[string]types.AttributeValue{
		":status":  &types.AttributeValueMemberS{Value: it.Status},
		":error":   &types.AttributeValueMemberS{Value: it.Error},
		":updated": &types.AttributeValueMemberS{Value: it.UpdatedAt},
		":dests":   dests,
		":asm":     &types.AttributeValueMemberBOOL{Value: it.Assembled},
		":v":       num(u.Version),
		":nv":      num(u.Version + 1),
	}
	update := "SET #status = :status, #error = :error, updatedAt = :updated, destinations = :dests, assembled = :asm, version = :nv"
	cond := "version = :v"
	if h != nil {
		names["#lo"], names["#le"] = h.Lease+"LeaseOwner", h.Lease+"LeaseExpiry"
		values[":me"] = &types.AttributeValueMemberS{Value: h.Owner}
		values[":now"] = num(s.now().UnixMilli())
		values[":exp"] = num(s.now().Add(h.TTL).UnixMilli())
		update += ", #le = :exp"
		cond += " AND #lo = :me AND #le > :now"
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key(u.AtomID, u.ID),
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String("attribute_exists(uploadId) AND " + cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		if err != nil {
			return fmt.Errorf("save upload %s: %w", u.ID, dbError(err))
		}
		return nil
	}
	if ccf.Item == nil {
		return upload.Errorf(upload.ENOTFOUND, "atom %s has no upload %s", u.AtomID, u.ID)
	}
	if v, _ := numAttr(ccf.Item["version"]); v != u.Version {
		return errVersion
	}
	return ErrLeaseLost
}

// CompletePart records that part n is in S3, idempotently, and returns the
// record as it is after the write. A cancelled or failed upload takes no
// more parts: ECONFLICT, with the record.
func (s *Store) CompletePart(ctx context.Context, atomID, id string, n int) (*upload.Upload, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(atomID, id),
		UpdateExpression:         aws.String("ADD completeParts :n"),
		ConditionExpression:      aws.String("attribute_exists(uploadId) AND NOT (#status IN (:cancelled, :failed))"),
		ExpressionAttributeNames: map[string]string{"#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n":         &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(n)}},
			":cancelled": &types.AttributeValueMemberS{Value: string(upload.StatusCancelled)},
			":failed":    &types.AttributeValueMemberS{Value: string(upload.StatusFailed)},
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if ccf.Item == nil {
			return nil, upload.Errorf(upload.ENOTFOUND, "atom %s has no upload %s", atomID, id)
		}
		u, derr := fromAttrs(ccf.Item)
		if derr != nil {
			return nil, derr
		}
		return u, upload.Errorf(upload.ECONFLICT, "upload %s is %s and takes no more parts", id, u.Status)
	}
	if err != nil {
		return nil, fmt.Errorf("complete part %d of %s: %w", n, id, dbError(err))
	}
	return fromAttrs(out.Attributes)
}

// Acquire takes the named lease for owner until ttl from now, if it is
// free, expired or already owner's, and returns the record. takenOver
// reports that the lease was taken from a holder whose lease expired (it
// did not release it, so what it recorded may lag behind what it did). A
// lease held by another is ErrLeaseHeld.
func (s *Store) Acquire(ctx context.Context, atomID, id, lease, owner string, ttl time.Duration) (u *upload.Upload, takenOver bool, err error) {
	now := s.now()
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(atomID, id),
		UpdateExpression:         aws.String("SET #lo = :me, #le = :exp"),
		ConditionExpression:      aws.String("attribute_exists(uploadId) AND (attribute_not_exists(#lo) OR #le < :now OR #lo = :me)"),
		ExpressionAttributeNames: map[string]string{"#lo": lease + "LeaseOwner", "#le": lease + "LeaseExpiry"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":  &types.AttributeValueMemberS{Value: owner},
			":now": num(now.UnixMilli()),
			":exp": num(now.Add(ttl).UnixMilli()),
		},
		// The record fields are the same before and after; the old item
		// also tells whether an expired holder was there.
		ReturnValues:                        types.ReturnValueAllOld,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if ccf.Item == nil {
			return nil, false, upload.Errorf(upload.ENOTFOUND, "atom %s has no upload %s", atomID, id)
		}
		return nil, false, ErrLeaseHeld
	}
	if err != nil {
		return nil, false, fmt.Errorf("acquire %s lease of %s: %w", lease, id, dbError(err))
	}
	prev, _ := out.Attributes[lease+"LeaseOwner"].(*types.AttributeValueMemberS)
	u, err = fromAttrs(out.Attributes)
	return u, prev != nil && prev.Value != owner, err
}

// Renew extends owner's lease to ttl from now; ErrLeaseLost if owner no
// longer holds it.
func (s *Store) Renew(ctx context.Context, atomID, id, lease, owner string, ttl time.Duration) error {
	now := s.now()
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(atomID, id),
		UpdateExpression:         aws.String("SET #le = :exp"),
		ConditionExpression:      aws.String("#lo = :me AND #le > :now"),
		ExpressionAttributeNames: map[string]string{"#lo": lease + "LeaseOwner", "#le": lease + "LeaseExpiry"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":  &types.AttributeValueMemberS{Value: owner},
			":now": num(now.UnixMilli()),
			":exp": num(now.Add(ttl).UnixMilli()),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("renew %s lease of %s: %w", lease, id, dbError(err))
	}
	return nil
}

// NoPart is the unlessComplete argument of Release that releases
// unconditionally.
const NoPart = -1

// Release gives up owner's lease. With unlessComplete ≥ 0 it does so only
// while that part is not complete, and reports false (keeping the lease)
// when the part has arrived: the holder must go on, so that a part
// completed during its turn is never left without a writer. Releasing a
// lease one does not hold is not an error.
func (s *Store) Release(ctx context.Context, atomID, id, lease, owner string, unlessComplete int) (bool, error) {
	cond := "#lo = :me"
	values := map[string]types.AttributeValue{":me": &types.AttributeValueMemberS{Value: owner}}
	if unlessComplete >= 0 {
		cond += " AND NOT contains(completeParts, :p)"
		values[":p"] = num(int64(unlessComplete))
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key(atomID, id),
		UpdateExpression:                    aws.String("REMOVE #lo, #le"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            map[string]string{"#lo": lease + "LeaseOwner", "#le": lease + "LeaseExpiry"},
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if owned, _ := ccf.Item[lease+"LeaseOwner"].(*types.AttributeValueMemberS); owned != nil && owned.Value == owner {
			return false, nil // still ours: the part arrived
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("release %s lease of %s: %w", lease, id, dbError(err))
	}
	return true, nil
}

// Abandon gives up owner's lease without vouching for the record: the lease
// is free at once, but the next Acquire reports it as taken over, as if it
// had expired. A holder that stops after an error abandons, so that the next
// one checks what the record cannot know (what YouTube committed).
// Abandoning a lease one does not hold is not an error.
func (s *Store) Abandon(ctx context.Context, atomID, id, lease, owner string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(atomID, id),
		UpdateExpression:         aws.String("SET #le = :zero"),
		ConditionExpression:      aws.String("#lo = :me"),
		ExpressionAttributeNames: map[string]string{"#lo": lease + "LeaseOwner", "#le": lease + "LeaseExpiry"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":   &types.AttributeValueMemberS{Value: owner},
			":zero": num(0),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("abandon %s lease of %s: %w", lease, id, dbError(err))
	}
	return nil
}

// dbError turns DynamoDB's throttling and availability errors into an
// EUNAVAILABLE domain error (wrapping the original); other errors stay as
// they are.
func dbError(err error) error {
	var (
		throttled *types.ProvisionedThroughputExceededException
		limit     *types.RequestLimitExceeded
		internal  *types.InternalServerError
		ae        smithy.APIError
	)
	switch {
	case errors.As(err, &throttled), errors.As(err, &limit), errors.As(err, &internal):
		return errors.Join(upload.Errorf(upload.EUNAVAILABLE, "the progress table is busy; try again"), err)
	case errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer:
		return errors.Join(upload.Errorf(upload.EUNAVAILABLE, "the progress table is unavailable; try again"), err)
	}
	return err
}

func num(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func numAttr(av types.AttributeValue) (int64, bool) {
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
