// Package transcode turns the reassembled original of an upload
// (uploads/<atomId>/<uploadId>/full in the source bucket) into the files of
// the s3Bucket destination, under <atomId>/<uploadId>/ in the destination
// bucket: an HLS ladder of fMP4 (CMAF) segments with its master playlist,
// a progressive MP4 of the highest rendition and a JPEG poster (the layout
// is described at HLSDir). The ladder follows the source (Ladder): nothing
// is scaled up.
//
// Two backends offer the same remote-job contract, Start(spec) → job id and
// Job(id) → state, percent, outputs:
//
//   - MediaConvert submits a job to AWS Elemental MediaConvert after
//     probing the original with MediaConvert's Probe, and never a second
//     one for the same attempt (see MediaConvert.Start). The service runs
//     it; Job asks MediaConvert. IAM: mediaconvert:Probe, SearchJobs,
//     CreateJob and GetJob for this service (Probe reads the original with
//     its credentials), plus iam:PassRole on the MediaConvert role
//     (RoleARN), which itself needs s3:GetObject on the source and
//     s3:PutObject on the destination bucket.
//
//   - FFmpeg runs ffmpeg/ffprobe in this process (local runs and
//     self-hosting). Its job state lives as JSON in the destination bucket
//     (see StateKey) so that any instance can answer Job and a job whose
//     worker died is reported lost. IAM: s3:GetObject on the source;
//     s3:PutObject and s3:GetObject on the destination bucket (outputs and
//     state objects; multipart uploads of large files need no further
//     action, but s3:AbortMultipartUpload lets failed ones be cleaned up).
//
// Errors from AWS become domain errors of package upload at this boundary:
// EINVALID for requests the service refuses, ENOTFOUND for unknown jobs or
// objects, EUNAVAILABLE for throttling, server faults and unreachable
// services, EINTERNAL otherwise.
package transcode
