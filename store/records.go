package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"atomuploads/retry"
	"atomuploads/upload"
)

// conflictRetry is the policy of Update's read-modify-write loop when
// another writer changed the record in between: short pauses, a bounded
// number of tries.
var conflictRetry = retry.Policy{Base: 20 * time.Millisecond, Cap: 250 * time.Millisecond, Attempts: 11}

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

// Bounds of one List. DynamoDB answers a Query with at most 1 MB of items,
// and a record of 10,000 parts is about 70 KB of them; List asks for at
// most listQueryItems items a query, so one page in memory is a few
// records, whatever the limit. A filtered list examines at most
// listMaxExamined uploads (matching or not) before it stops with a cursor,
// so a rare status cannot keep a request reading an atom of thousands.
const listQueryItems = 20

var listMaxExamined = 2000 // a variable for the tests

// List hands uploads of the atom to fn one at a time, newest first, as it
// reads them from DynamoDB a page at a time: it never holds more than one
// page. after, when set, is the last upload id of the previous page: only
// older uploads follow. statuses, when not empty, keeps only uploads in one
// of them. List stops after limit uploads, when the atom has no more, after
// listMaxExamined uploads examined, or at the first error of fn (returned
// as it is).
//
// next is the id of the last upload examined when more may follow (pass it
// as after for the next page), or "" when the atom has no more. With a
// filter, a page may be short (or empty) and still have a next.
func (s *Store) List(ctx context.Context, atomID, after string, statuses []upload.Status, limit int, fn func(*upload.Upload) error) (next string, err error) {
	if limit < 1 {
		return "", fmt.Errorf("list uploads of %s: limit %d is not positive", atomID, limit)
	}
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("atomId = :a"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":a": &types.AttributeValueMemberS{Value: atomID},
		},
		ScanIndexForward: aws.Bool(false),
	}
	if after != "" {
		in.ExclusiveStartKey = s.key(atomID, after)
	}
	if len(statuses) > 0 {
		names := make([]string, len(statuses))
		for i, st := range statuses {
			names[i] = ":s" + strconv.Itoa(i)
			in.ExpressionAttributeValues[names[i]] = &types.AttributeValueMemberS{Value: string(st)}
		}
		in.ExpressionAttributeNames = map[string]string{"#status": "status"}
		in.FilterExpression = aws.String("#status IN (" + strings.Join(names, ", ") + ")")
	}
	given, examined := 0, 0
	last := after
	for {
		// Unfiltered, one more than the page needs tells whether more follow.
		n := listQueryItems
		if in.FilterExpression == nil {
			n = min(limit-given+1, listQueryItems)
		}
		in.Limit = aws.Int32(int32(n))
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return "", fmt.Errorf("list uploads of %s: %w", atomID, dbError(err))
		}
		examined += int(out.ScannedCount)
		for i, av := range out.Items {
			if given == limit {
				return last, nil // an upload beyond the page: more follow
			}
			u, err := fromAttrs(av)
			if err != nil {
				return "", err
			}
			out.Items[i] = nil // the page shrinks as records are handed over
			if err := fn(u); err != nil {
				return "", err
			}
			given++
			last = u.ID
		}
		if out.LastEvaluatedKey == nil {
			return "", nil
		}
		var lek struct {
			UploadID string `dynamodbav:"uploadId"`
		}
		if err := attributevalue.UnmarshalMap(out.LastEvaluatedKey, &lek); err != nil || lek.UploadID == "" {
			return "", fmt.Errorf("list uploads of %s: DynamoDB gave a last key without an upload id", atomID)
		}
		if given == limit || examined >= listMaxExamined {
			// Either the page is full and more may follow, or the filter
			// skipped many: go on from the last upload examined.
			if given < limit {
				last = lek.UploadID
			}
			return last, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Update reads the upload, applies fn and writes the record back on
// condition that nobody changed it in between; a conflict is retried with a
// fresh read (fn runs again). An error from fn is returned as it is and
// nothing is written. UpdatedAt is set to the time of the write.
func (s *Store) Update(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return s.update(ctx, atomID, id, nil, false, fn)
}

// UpdateIfNoPart is Update on condition also that no part completed since
// the read (CompletePart does not change the version): a decision made on
// the upload's silence, such as its expiry, is made again on a fresh read
// when a part arrived meanwhile.
func (s *Store) UpdateIfNoPart(ctx context.Context, atomID, id string, fn func(*upload.Upload) error) (*upload.Upload, error) {
	return s.update(ctx, atomID, id, nil, true, fn)
}

func (s *Store) update(ctx context.Context, atomID, id string, h *upload.Lease, noPart bool, fn func(*upload.Upload) error) (*upload.Upload, error) {
	var u *upload.Upload
	err := conflictRetry.Do(ctx, func(err error) bool { return errors.Is(err, errVersion) }, func(ctx context.Context, _ int) error {
		var err error
		if u, err = s.Get(ctx, atomID, id); err != nil {
			return err
		}
		var lastPart *time.Time
		if noPart {
			read := u.LastPartAt
			lastPart = &read
		}
		if err := fn(u); err != nil {
			return err
		}
		u.UpdatedAt = s.now().UTC()
		return s.write(ctx, u, h, lastPart)
	})
	switch {
	case errors.Is(err, errVersion):
		return nil, upload.Errorf(upload.ECONFLICT, "upload %s is changing too often to update; try again", id)
	case err != nil:
		return nil, err
	}
	u.Version++
	return u, nil
}

var errVersion = errors.New("version changed")

// write stores the mutable record fields of u if its version is unchanged
// (and, with h, the lease is still held, which it renews; with lastPart,
// no part completed since then). It keeps the upload's place in the sparse
// indexes: live while it is not terminal, due for clean-up from the write
// that ends it when its parts may go (upload.PartsDeletable) until they are
// gone (CleanedUp).
func (s *Store) write(ctx context.Context, u *upload.Upload, h *upload.Lease, lastPart *time.Time) error {
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
		":asmid":   &types.AttributeValueMemberS{Value: it.AssemblyID},
		":asmdone": num(int64(it.AssemblyDone)),
		":asmetag": &types.AttributeValueMemberS{Value: it.AssemblyETag},
		":adv":     num(it.Advances),
		":pat":     num(s.now().UnixMilli()),
		":v":       num(u.Version),
		":nv":      num(u.Version + 1),
	}
	update := "SET #status = :status, #error = :error, updatedAt = :updated, destinations = :dests, assembled = :asm, " +
		"assemblyUploadId = :asmid, assemblyCopied = :asmdone, assemblyETag = :asmetag, advances = :adv, progressAt = :pat, version = :nv"
	if it.RetriedAt != "" {
		values[":retried"] = &types.AttributeValueMemberS{Value: it.RetriedAt}
		update += ", retriedAt = :retried"
	}
	if it.PartsDeleted {
		values[":pdel"] = &types.AttributeValueMemberBOOL{Value: true}
		update += ", partsDeleted = :pdel"
	}
	if it.YouTubeReadParts > 0 {
		// Never lowered: every writer read it at the version it writes.
		values[":ytread"] = num(int64(it.YouTubeReadParts))
		update += ", " + attrYouTubeRead + " = :ytread"
	}
	var remove []string
	if it.Live != "" {
		values[":live"] = &types.AttributeValueMemberS{Value: it.Live}
		update += ", live = :live"
	} else {
		remove = append(remove, attrLive)
	}
	switch {
	case u.PartsDeleted:
		// On its way out of the clean-up index: CleanedUp takes it out
		// once the parts are gone, whatever happens to the record.
	case it.Live != "":
		remove = append(remove, attrCleanup, attrCleanupAt)
	case u.PartsDeletable():
		// Due for clean-up from the first write that ends it; later
		// writes keep that time.
		values[":cleanup"] = &types.AttributeValueMemberS{Value: liveValue}
		update += ", " + attrCleanup + " = :cleanup, " + attrCleanupAt + " = if_not_exists(" + attrCleanupAt + ", :pat)"
	}
	cond := "version = :v"
	if lastPart != nil {
		if lastPart.IsZero() {
			cond += " AND attribute_not_exists(" + attrLastPartAt + ")"
		} else {
			values[":lastPart"] = num(lastPart.UnixMilli())
			cond += " AND " + attrLastPartAt + " = :lastPart"
		}
	}
	if h != nil {
		names["#lo"], names["#le"] = leaseAttrs(h.Name)
		values[":me"] = &types.AttributeValueMemberS{Value: h.Owner}
		values[":now"] = num(s.now().UnixMilli())
		values[":exp"] = num(s.now().Add(h.TTL).UnixMilli())
		update += ", #le = :exp"
		cond += " AND #lo = :me AND #le > :now"
	}
	if len(remove) > 0 {
		update += " REMOVE " + strings.Join(remove, ", ")
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
	if lastPart != nil {
		was := int64(0)
		if !lastPart.IsZero() {
			was = lastPart.UnixMilli()
		}
		if ms, _ := numAttr(ccf.Item[attrLastPartAt]); ms != was {
			return errVersion // a part completed: read again
		}
	}
	return upload.ErrLeaseLost
}

// CompletePart records that part n is in S3, idempotently, and when (the
// upload's lastPartAt), and returns the record as it is after the write. A
// cancelled, failed or expired upload takes no more parts: ECONFLICT, with
// the record.
func (s *Store) CompletePart(ctx context.Context, atomID, id string, n int) (*upload.Upload, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.key(atomID, id),
		UpdateExpression:         aws.String("ADD completeParts :n, advances :one SET progressAt = :now, " + attrLastPartAt + " = :now"),
		ConditionExpression:      aws.String("attribute_exists(uploadId) AND NOT (#status IN (:cancelled, :failed, :expired))"),
		ExpressionAttributeNames: map[string]string{"#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n":         &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(n)}},
			":one":       num(1),
			":now":       num(s.now().UnixMilli()),
			":cancelled": &types.AttributeValueMemberS{Value: string(upload.StatusCancelled)},
			":failed":    &types.AttributeValueMemberS{Value: string(upload.StatusFailed)},
			":expired":   &types.AttributeValueMemberS{Value: string(upload.StatusExpired)},
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
