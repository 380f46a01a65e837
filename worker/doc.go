// Package worker consumes the queue of S3 events and the service's own
// follow-up messages with a bounded pool of goroutines, and runs the steps
// of an upload: mark a part complete, relay the parts to YouTube in order,
// reassemble the original by multipart copy once every part is in, start
// and follow the s3Bucket transcode, follow YouTube's processing and add the
// video to the atom.
//
// # Shape
//
// Data flows one way: the Pool receives a message and gives it to the
// Dispatcher, which parses it into a Task of a typed Kind and hands it, with
// the upload's record, to the one step of that kind (an exhaustive switch).
// A step talks to the store, S3, YouTube, the transcoder or the atom API
// and returns an outcome; it never calls another step. When one step's work
// makes another due at once (a part completes: relay it; every part is in:
// reassemble), the step names the next kinds in its outcome and the
// Dispatcher runs them side by side. Work that is due later goes on the
// queue through the one scheduler, as a message any instance may take.
//
// The steps, one concern each, with only the dependencies they use:
// partStep (part.go), relayStep (relay.go), reassembleStep
// (reassemble.go), transcodeStep (transcode.go: start and follow the job),
// youTubePollStep (youtubepoll.go) and assetStep (asset.go). They share the
// lease type (lease.go: acquire, keep renewing, end by release, abandon or
// keep) and the retry policy of package retry.
//
// # Sweeps
//
// The Sweeper (sweep.go) runs the periodic jobs over the whole table, one
// instance at a time each, under a lease: the reconciler (reconcile.go),
// the dead-letter reader (deadletter.go), the expiry of abandoned uploads
// (expire.go) and the clean-up of the parts of uploads that are over
// (cleanup.go). Each round is idempotent: one cut short is done again by
// the next holder of the job.
//
// # Delivery
//
// A message is deleted only once its effect is durable in the progress
// table; every step is a conditional, idempotent write, so a message may be
// delivered any number of times to any instance. A message that keeps
// failing is left to the queue's redrive policy (dead-letter queue).
//
// # Metrics
//
// With Deps.Metrics (and PoolConfig's and SweepConfig's), the worker
// counts at its steps' own state changes, one call each: messages by kind
// and outcome (noted in the message's context by whatever decides it),
// the relay's part-to-YouTube lag (from the part's S3 creation time, which
// its pin carries), sessions, YouTube errors by class, leases, reassembly,
// transcode and asset calls; status changes are counted by a decorator of
// the Store that compares each write's record before and after. The census
// sweep publishes the live uploads, the parked relays and the queues'
// depth. Without metrics, nothing changes.
//
// IAM: sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility,
// sqs:SendMessage and sqs:GetQueueAttributes (the census) on the queue; s3:GetObject, s3:PutObject (the
// multipart calls on …/full), s3:AbortMultipartUpload and, for the
// clean-up, s3:DeleteObject on arn:aws:s3:::<bucket>/uploads/*;
// s3:ListBucket and s3:ListBucketMultipartUploads on the bucket (the
// clean-up lists under uploads/); and the store's DynamoDB actions.
package worker
