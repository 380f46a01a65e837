package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"atomuploads/upload"
)

// The pins of an upload's parts are items of their own, in a partition of
// the upload's own ("_parts#<uploadId>", which no atom id can be), one a
// part with the part number as its sort key: an upload of 10,000 parts
// would not fit its ETags in the upload's item (DynamoDB's 400 KB), and
// every write of a large item costs what the item weighs.
//
//	etag S, checksumSHA256 S, size N, readAt N (unix ms, once read),
//	createdAt N (unix ms: when S3 created the part, for the relay's lag;
//	written with the pin, so it costs no write of its own),
//	expiresAt N (TTL, as the upload's)
//
// A pin is claimed by a reader before the part is read, and never changes
// after: one part at a time on the pin (readAt, readBy: ClaimPart), or, by
// the relay, which reads the file in order, for all the parts before a
// mark on the upload's item (upload.Upload.YouTubeReadParts, raised with
// the relay's own record writes, so it costs no write of its own).
func pinKey(uploadID string, n int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrAtomID:   &types.AttributeValueMemberS{Value: "_parts#" + uploadID},
		attrUploadID: &types.AttributeValueMemberS{Value: fmt.Sprintf("%05d", n)},
	}
}

// PinPart pins part p.Part of the upload as p says, and reports how it
// went: pinned for the first time, pinned already as it is, or pinned
// afresh because the part changed before anyone read it. A part that
// changed after a relay or a reassembly began to read it is
// upload.ErrPartRead, and its pin stays.
func (s *Store) PinPart(ctx context.Context, atomID, id string, p upload.PartPin) (string, error) {
	values := map[string]types.AttributeValue{
		":etag": &types.AttributeValueMemberS{Value: p.ETag},
		":sum":  &types.AttributeValueMemberS{Value: p.ChecksumSHA256},
		":size": num(p.Size),
		":atom": &types.AttributeValueMemberS{Value: atomID},
	}
	set := "SET etag = :etag, checksumSHA256 = :sum, #size = :size, pinnedAtom = :atom"
	if !p.CreatedAt.IsZero() {
		values[":created"] = num(p.CreatedAt.UnixMilli())
		set += ", createdAt = :created"
	}
	if s.retention > 0 {
		values[":exp"] = num(s.now().Add(s.retention).Unix())
		set += ", " + attrExpiresAt + " = if_not_exists(" + attrExpiresAt + ", :exp)"
	}
	for range 3 {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                           aws.String(s.table),
			Key:                                 pinKey(id, p.Part),
			UpdateExpression:                    aws.String(set),
			ConditionExpression:                 aws.String("attribute_not_exists(etag)"),
			ExpressionAttributeNames:            map[string]string{"#size": "size"},
			ExpressionAttributeValues:           values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			return upload.PinNew, nil
		case !errors.As(err, &ccf):
			return "", fmt.Errorf("pin part %d of %s: %w", p.Part, id, dbError(err))
		}
		old, _ := ccf.Item["etag"].(*types.AttributeValueMemberS)
		if old != nil && old.Value == p.ETag {
			return upload.PinSame, nil
		}
		if _, read := ccf.Item["readAt"]; read {
			return "", partRead(p.Part, ccf.Item)
		}
		// Changed before anyone read it: pin it afresh, unless a reader
		// claimed it meanwhile.
		renew := map[string]types.AttributeValue{":old": old}
		for k, v := range values {
			renew[k] = v
		}
		if old == nil {
			continue
		}
		// The relay's claims are a mark on the upload's item
		// (YouTubeReadParts), not on the pin: the renewal checks that mark
		// in the same transaction.
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Update: &types.Update{
				TableName:                           aws.String(s.table),
				Key:                                 pinKey(id, p.Part),
				UpdateExpression:                    aws.String(set),
				ConditionExpression:                 aws.String("etag = :old AND attribute_not_exists(readAt)"),
				ExpressionAttributeNames:            map[string]string{"#size": "size"},
				ExpressionAttributeValues:           renew,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{ConditionCheck: &types.ConditionCheck{
				TableName:                 aws.String(s.table),
				Key:                       s.key(atomID, id),
				ConditionExpression:       aws.String("attribute_not_exists(" + attrYouTubeRead + ") OR " + attrYouTubeRead + " <= :n"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":n": num(int64(p.Part))},
			}},
		}})
		var tc *types.TransactionCanceledException
		switch {
		case err == nil:
			return upload.PinRenewed, nil
		case !errors.As(err, &tc):
			return "", fmt.Errorf("pin part %d of %s afresh: %w", p.Part, id, dbError(err))
		}
		reasons := tc.CancellationReasons
		if len(reasons) == 2 && aws.ToString(reasons[1].Code) == "ConditionalCheckFailed" {
			return "", &upload.PartChangedError{Part: p.Part, ReadBy: upload.ReaderYouTube}
		}
		if len(reasons) == 2 && (aws.ToString(reasons[0].Code) == "TransactionConflict" || aws.ToString(reasons[1].Code) == "TransactionConflict") {
			continue // another write held one of the items: look again
		}
		if len(reasons) == 0 || aws.ToString(reasons[0].Code) != "ConditionalCheckFailed" {
			return "", fmt.Errorf("pin part %d of %s afresh: %w", p.Part, id, dbError(err))
		}
		if _, read := reasons[0].Item["readAt"]; read {
			return "", partRead(p.Part, reasons[0].Item)
		}
		// The pin changed meanwhile (another event of the same part): look again.
	}
	return "", upload.Errorf(upload.ECONFLICT, "part %d of %s is changing too often to pin; try again", p.Part, id)
}

// Pins returns the pins of parts [from, to) of the upload, with a
// consistent read; a part never pinned (a record from before pins) has
// none. The relay reads the pins below its mark (the upload's
// YouTubeReadParts, already written) this way: one query a chunk, where
// ClaimPart costs a write a part.
func (s *Store) Pins(ctx context.Context, _, id string, from, to int) (map[int]upload.PartPin, error) {
	if to <= from {
		return map[int]upload.PartPin{}, nil
	}
	pins := make(map[int]upload.PartPin, to-from)
	in := &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		ConsistentRead:           aws.Bool(true),
		KeyConditionExpression:   aws.String("#atom = :atom AND #upload BETWEEN :from AND :to"),
		ExpressionAttributeNames: map[string]string{"#atom": attrAtomID, "#upload": attrUploadID},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":atom": &types.AttributeValueMemberS{Value: "_parts#" + id},
			":from": pinKey(id, from)[attrUploadID],
			":to":   pinKey(id, to-1)[attrUploadID],
		},
	}
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("read the pins of parts %d-%d of %s: %w", from, to-1, id, dbError(err))
		}
		for _, item := range out.Items {
			p, ok := pinOf(item)
			if !ok {
				continue
			}
			if by, ok := item["readBy"].(*types.AttributeValueMemberS); ok {
				p.Read, p.ReadBy = true, by.Value // claimed one part at a time
			}
			pins[p.Part] = p
		}
		if len(out.LastEvaluatedKey) == 0 {
			return pins, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// pinOf reads a pin item.
func pinOf(item map[string]types.AttributeValue) (upload.PartPin, bool) {
	key, ok := item[attrUploadID].(*types.AttributeValueMemberS)
	if !ok {
		return upload.PartPin{}, false
	}
	n, err := strconv.Atoi(key.Value)
	if err != nil {
		return upload.PartPin{}, false
	}
	p := upload.PartPin{Part: n}
	if v, ok := item["etag"].(*types.AttributeValueMemberS); ok {
		p.ETag = v.Value
	}
	if v, ok := item["checksumSHA256"].(*types.AttributeValueMemberS); ok {
		p.ChecksumSHA256 = v.Value
	}
	if v, ok := item["size"].(*types.AttributeValueMemberN); ok {
		p.Size, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	if ms, ok := numAttr(item["createdAt"]); ok {
		p.CreatedAt = time.UnixMilli(ms).UTC()
	}
	return p, p.ETag != ""
}

// ClaimPart marks part n of the upload as read by reader ("youtube", or
// "assembly"; the first claim's reader and time stay) and returns its pin;
// from then on the pin never changes. A part never pinned is ENOTFOUND.
func (s *Store) ClaimPart(ctx context.Context, _, id string, n int, reader string) (upload.PartPin, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 pinKey(id, n),
		UpdateExpression:    aws.String("SET readAt = if_not_exists(readAt, :now), readBy = if_not_exists(readBy, :by)"),
		ConditionExpression: aws.String("attribute_exists(etag)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": num(s.now().UnixMilli()),
			":by":  &types.AttributeValueMemberS{Value: reader},
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return upload.PartPin{}, upload.Errorf(upload.ENOTFOUND, "part %d of %s was never pinned", n, id)
	}
	if err != nil {
		return upload.PartPin{}, fmt.Errorf("claim part %d of %s: %w", n, id, dbError(err))
	}
	p, _ := pinOf(out.Attributes)
	p.Part, p.Read = n, true
	if v, ok := out.Attributes["readBy"].(*types.AttributeValueMemberS); ok {
		p.ReadBy = v.Value
	}
	return p, nil
}

// partRead is upload.ErrPartRead for part n, saying who read it.
func partRead(n int, item map[string]types.AttributeValue) error {
	e := &upload.PartChangedError{Part: n}
	if by, ok := item["readBy"].(*types.AttributeValueMemberS); ok {
		e.ReadBy = by.Value
	}
	return e
}
