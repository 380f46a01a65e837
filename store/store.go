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
//	             the leases of upload.LeaseName: "youtube" (the one writer of
//	             the resumable session), "assembly" (the one reassembler),
//	             "asset" (the one atom API call)
//	expiresAt    N   TTL attribute (unix seconds), createdAt + table.retention
//	advances     N   the upload's steps forward (parts completed, reassembly
//	             checkpoints); destinations[].advances likewise per destination:
//	             a worker compares them to tell an attempt that progressed
//	assemblyUploadId S, assemblyCopied N, assemblyETag S
//	             the multipart copy of the original while it is under way
//	live         S   "1" while the upload is not terminal, absent after: the
//	             partition key of the sparse index live-progressAt
//	progressAt   N   unix ms of the last change, or of the last retry
//	             scheduled (Touch): the index's sort key
//	lastPartAt   N   unix ms of the last part completed (CompletePart
//	             only; never moved by Touch): with createdAt and retriedAt
//	             (S, the last retry), the clock of an abandoned upload
//	partsDeleted BOOL the clean-up deletes, or deleted, the parts: nothing
//	             reads them again (a retry that needs them is refused)
//	cleanup      S   "1" from the write that ends an upload whose parts may
//	             go (upload.PartsDeletable) until they are gone (CleanedUp),
//	             absent otherwise: the partition key of the sparse index
//	             cleanup-cleanupAt
//	cleanupAt    N   unix ms of that write (when the upload ended): the
//	             index's sort key
//	youtubeReadParts N the relay has claimed parts [0, N): their pins (pins.go)
//	             never change again; raised with the relay's record writes
//
// Items with atomId "_sweeps" (upload.SweepAtom) are not uploads: each holds
// the lease of one periodic sweep (the reconciler, the dead-letter reader,
// the expiry, the clean-up).
//
// "One upload" is GetItem(atomId, uploadId) with a consistent read; "an
// atom's uploads, newest first" is Query(atomId) with ScanIndexForward=false,
// read a page of a few items at a time, from an ExclusiveStartKey made of
// the atom and the last upload id of the previous page, with a
// FilterExpression on status when the list asks for some;
// "the live uploads that have been quiet since t" is Query on the index
// live-progressAt (keys only); "the uploads that ended before t whose parts
// are still there" is Query on the index cleanup-cleanupAt (keys only).
// Both indexes are sparse: an upload is in the first while it lives and in
// the second from its end until its parts are deleted, so their queries
// cost what those few uploads cost, not the millions of finished records.
// An upload enters and leaves the clean-up index once each (two index
// writes in its life); writes that do not move its keys cost the index
// nothing. Billing is on demand.
//
// The items of part pins (pins.go) are left to their TTL when the parts
// are deleted: deleting them would cost a write per part, and nothing
// reads them once the parts are gone.
//
// Every write is conditional: create on attribute_not_exists, record updates
// on the version read (an expiry also on no part having completed since),
// part completion on the upload being alive, lease
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
// dynamodb:Query on the table and its two indexes, and
// dynamodb:ConditionCheckItem on the table (the renewal of a part's pin is a
// TransactWriteItems of an update and a condition check).
package store

import (
	"context"
	"errors"
	"strconv"
	"time"

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
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

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

// dbError turns DynamoDB's throttling and availability errors into an
// EUNAVAILABLE domain error (wrapping the original); other errors stay as
// they are.
func dbError(err error) error {
	var (
		throttled *types.ProvisionedThroughputExceededException
		limit     *types.RequestLimitExceeded
		internal  *types.InternalServerError
		conflict  *types.TransactionConflictException
		ae        smithy.APIError
	)
	switch {
	// A write to an item while a transaction holds it (the rare renewal
	// of a part's pin checks the upload's item) is refused as a conflict:
	// busy, like throttling.
	case errors.As(err, &throttled), errors.As(err, &limit), errors.As(err, &internal), errors.As(err, &conflict):
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
