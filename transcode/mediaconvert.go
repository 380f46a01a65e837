package transcode

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/mediaconvert"
	"github.com/aws/aws-sdk-go-v2/service/mediaconvert/types"

	"atomuploads/upload"
)

// MediaConvertAPI is the part of the MediaConvert client the backend uses;
// *mediaconvert.Client implements it.
type MediaConvertAPI interface {
	CreateJob(ctx context.Context, in *mediaconvert.CreateJobInput, optFns ...func(*mediaconvert.Options)) (*mediaconvert.CreateJobOutput, error)
	GetJob(ctx context.Context, in *mediaconvert.GetJobInput, optFns ...func(*mediaconvert.Options)) (*mediaconvert.GetJobOutput, error)
}

// MediaConvertConfig configures the MediaConvert backend.
type MediaConvertConfig struct {
	// RoleARN is the IAM role MediaConvert assumes to read the source and
	// write the outputs. Required; the service needs iam:PassRole on it.
	RoleARN string
	// Queue is the ARN of the MediaConvert queue. Default "": the account's
	// Default queue.
	Queue string
	// Endpoint overrides the MediaConvert endpoint URL. Default "": the SDK
	// resolves the regional endpoint. Apply it with ClientOptions when
	// creating the client.
	Endpoint string
	// DestinationBucket receives the outputs. Required.
	DestinationBucket string
	// Renditions are the MP4 outputs. Default DefaultRenditions().
	Renditions []Rendition
	// PosterFrame adds a JPEG of the first frame, at the height of the
	// tallest rendition, as <atomId>/<uploadId>/poster.0000000.jpg.
	// Default false (the zero value); set it to get a poster.
	PosterFrame bool
}

// Validate reports every problem of the configuration.
func (c MediaConvertConfig) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.RoleARN, "arn:") || !strings.Contains(c.RoleARN, ":role/") {
		errs = append(errs, fmt.Errorf("roleArn %q must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)", c.RoleARN))
	}
	if c.Queue != "" && !strings.HasPrefix(c.Queue, "arn:") {
		errs = append(errs, fmt.Errorf("queue %q must be a queue ARN or empty", c.Queue))
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q must be an http(s) URL or empty", c.Endpoint))
		}
	}
	if c.DestinationBucket == "" {
		errs = append(errs, fmt.Errorf("destinationBucket is required"))
	}
	errs = append(errs, validateRenditions(c.Renditions)...)
	return joinProblems("mediaconvert config", errs)
}

// ClientOptions applies Endpoint, when set, to a MediaConvert client:
// mediaconvert.NewFromConfig(awsCfg, cfg.ClientOptions).
func (c MediaConvertConfig) ClientOptions(o *mediaconvert.Options) {
	if c.Endpoint != "" {
		o.BaseEndpoint = aws.String(c.Endpoint)
	}
}

// MediaConvert is the AWS Elemental MediaConvert backend.
//
// Each rendition is its own file output group whose destination names the
// file, s3://<dest>/<atomId>/<uploadId>/<name>, so MediaConvert writes
// <name>.mp4 (it appends the extension, and no name modifier is needed
// with one output per group). The poster is a frame capture group with
// destination .../poster, written as poster.0000000.jpg: MediaConvert always
// numbers frame captures.
type MediaConvert struct {
	api        MediaConvertAPI
	cfg        MediaConvertConfig
	renditions []Rendition
}

// NewMediaConvert returns the MediaConvert backend, or the configuration's
// problems.
func NewMediaConvert(api MediaConvertAPI, cfg MediaConvertConfig) (*MediaConvert, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &MediaConvert{api: api, cfg: cfg, renditions: renditionsOrDefault(cfg.Renditions)}, nil
}

// Start submits the job. The Spec's Token is the ClientRequestToken, so a
// retried Start returns the job of the first call instead of a second job
// (MediaConvert honours a token for a limited time, about a minute; callers
// record the job id once Start returns and never call Start with the token
// again after that).
func (m *MediaConvert) Start(ctx context.Context, spec Spec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID, err)
	}
	out, err := m.api.CreateJob(ctx, m.createJobInput(spec))
	if err != nil {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID, mediaConvertError(err))
	}
	if out.Job == nil || aws.ToString(out.Job.Id) == "" {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID,
			upload.Errorf(upload.EINTERNAL, "MediaConvert returned no job id"))
	}
	return aws.ToString(out.Job.Id), nil
}

// Job asks MediaConvert for the job's state.
func (m *MediaConvert) Job(ctx context.Context, jobID string) (Job, error) {
	if jobID == "" {
		return Job{}, fmt.Errorf("get transcode job: %w", upload.Errorf(upload.EINVALID, "job id is required"))
	}
	out, err := m.api.GetJob(ctx, &mediaconvert.GetJobInput{Id: aws.String(jobID)})
	if err != nil {
		return Job{}, fmt.Errorf("get transcode job %s: %w", jobID, mediaConvertError(err))
	}
	if out.Job == nil {
		return Job{}, fmt.Errorf("get transcode job %s: %w", jobID, upload.Errorf(upload.EINTERNAL, "MediaConvert returned no job"))
	}
	return mediaConvertJob(jobID, out.Job), nil
}

func mediaConvertJob(jobID string, j *types.Job) Job {
	job := Job{ID: jobID, Percent: float64(aws.ToInt32(j.JobPercentComplete))}
	switch j.Status {
	case types.JobStatusSubmitted:
		job.State = StateSubmitted
		job.Percent = 0
	case types.JobStatusProgressing:
		job.State = StateProgressing
	case types.JobStatusComplete:
		job.State = StateComplete
		job.Percent = 100
		job.Outputs = mediaConvertOutputs(j.Settings)
	case types.JobStatusCanceled:
		job.State = StateError
		job.Error = "MediaConvert job was cancelled"
	case types.JobStatusError:
		job.State = StateError
		job.Error = "MediaConvert job failed"
		if code := aws.ToInt32(j.ErrorCode); code != 0 {
			job.Error += fmt.Sprintf(" (error %d)", code)
		}
		if msg := aws.ToString(j.ErrorMessage); msg != "" {
			job.Error += ": " + msg
		}
	default:
		// A status this code does not know yet: report it as still running
		// rather than inventing an outcome.
		job.State = StateProgressing
	}
	job.Percent = min(max(job.Percent, 0), 100)
	return job
}

// mediaConvertOutputs lists the outputs the job writes, from its own
// settings (GetJob does not return output paths). It follows the naming of
// this backend: <destination><nameModifier>.<ext> for files, and
// <destination><nameModifier>.0000000.jpg for a single frame capture.
func mediaConvertOutputs(s *types.JobSettings) (outputs []Output) {
	if s == nil {
		return nil
	}
	for _, g := range s.OutputGroups {
		if g.OutputGroupSettings == nil || g.OutputGroupSettings.FileGroupSettings == nil {
			continue
		}
		base, ok := s3Key(aws.ToString(g.OutputGroupSettings.FileGroupSettings.Destination))
		if !ok {
			continue
		}
		for _, o := range g.Outputs {
			name := base + aws.ToString(o.NameModifier)
			v := o.VideoDescription
			var w, h int
			if v != nil {
				w, h = int(aws.ToInt32(v.Width)), int(aws.ToInt32(v.Height))
			}
			switch {
			case v != nil && v.CodecSettings != nil && v.CodecSettings.Codec == types.VideoCodecFrameCapture:
				outputs = append(outputs, Output{Key: name + ".0000000.jpg", Kind: KindPoster, Width: w, Height: h})
			default:
				ext := aws.ToString(o.Extension)
				if ext == "" {
					ext = "mp4"
				}
				outputs = append(outputs, Output{Key: name + "." + ext, Kind: KindMP4, Width: w, Height: h,
					Bitrate: h264MaxBitrate(v) + aacBitrate(o.AudioDescriptions)})
			}
		}
	}
	return outputs
}

// s3Key is the key of an s3:// URL.
func s3Key(s3url string) (string, bool) {
	u, err := url.Parse(s3url)
	if err != nil || u.Scheme != "s3" {
		return "", false
	}
	return strings.TrimPrefix(u.Path, "/"), true
}

func h264MaxBitrate(v *types.VideoDescription) int {
	if v == nil || v.CodecSettings == nil || v.CodecSettings.H264Settings == nil {
		return 0
	}
	return int(aws.ToInt32(v.CodecSettings.H264Settings.MaxBitrate))
}

func aacBitrate(ads []types.AudioDescription) int {
	for _, a := range ads {
		if a.CodecSettings != nil && a.CodecSettings.AacSettings != nil {
			return int(aws.ToInt32(a.CodecSettings.AacSettings.Bitrate))
		}
	}
	return 0
}

func (m *MediaConvert) createJobInput(spec Spec) *mediaconvert.CreateJobInput {
	dest := "s3://" + m.cfg.DestinationBucket + "/" + OutputPrefix(spec.AtomID, spec.UploadID)
	const audioSelector = "Audio Selector 1"
	var groups []types.OutputGroup
	tallest := 0
	for _, r := range m.renditions {
		tallest = max(tallest, r.Height)
		groups = append(groups, types.OutputGroup{
			Name: aws.String(r.Name),
			OutputGroupSettings: &types.OutputGroupSettings{
				Type:              types.OutputGroupTypeFileGroupSettings,
				FileGroupSettings: &types.FileGroupSettings{Destination: aws.String(dest + r.Name)},
			},
			Outputs: []types.Output{{
				ContainerSettings: &types.ContainerSettings{
					Container:   types.ContainerTypeMp4,
					Mp4Settings: &types.Mp4Settings{MoovPlacement: types.Mp4MoovPlacementProgressiveDownload},
				},
				VideoDescription: &types.VideoDescription{
					Height: aws.Int32(int32(r.Height)),
					CodecSettings: &types.VideoCodecSettings{
						Codec: types.VideoCodecH264,
						H264Settings: &types.H264Settings{
							RateControlMode:    types.H264RateControlModeQvbr,
							MaxBitrate:         aws.Int32(int32(r.VideoBitrate)),
							QvbrSettings:       &types.H264QvbrSettings{QvbrQualityLevel: aws.Int32(7)},
							QualityTuningLevel: types.H264QualityTuningLevelSinglePassHq,
							SceneChangeDetect:  types.H264SceneChangeDetectTransitionDetection,
							CodecProfile:       types.H264CodecProfileHigh,
							CodecLevel:         types.H264CodecLevelAuto,
							FramerateControl:   types.H264FramerateControlInitializeFromSource,
							ParControl:         types.H264ParControlInitializeFromSource,
							GopSize:            aws.Float64(2),
							GopSizeUnits:       types.H264GopSizeUnitsSeconds,
						},
					},
				},
				AudioDescriptions: []types.AudioDescription{{
					AudioSourceName: aws.String(audioSelector),
					CodecSettings: &types.AudioCodecSettings{
						Codec: types.AudioCodecAac,
						AacSettings: &types.AacSettings{
							Bitrate:         aws.Int32(int32(r.audioBitrate())),
							CodingMode:      types.AacCodingModeCodingMode20,
							SampleRate:      aws.Int32(48000),
							CodecProfile:    types.AacCodecProfileLc,
							RateControlMode: types.AacRateControlModeCbr,
						},
					},
				}},
			}},
		})
	}
	if m.cfg.PosterFrame {
		groups = append(groups, types.OutputGroup{
			Name: aws.String(PosterName),
			OutputGroupSettings: &types.OutputGroupSettings{
				Type:              types.OutputGroupTypeFileGroupSettings,
				FileGroupSettings: &types.FileGroupSettings{Destination: aws.String(dest + PosterName)},
			},
			Outputs: []types.Output{{
				ContainerSettings: &types.ContainerSettings{Container: types.ContainerTypeRaw},
				VideoDescription: &types.VideoDescription{
					Height: aws.Int32(int32(tallest)),
					CodecSettings: &types.VideoCodecSettings{
						Codec: types.VideoCodecFrameCapture,
						FrameCaptureSettings: &types.FrameCaptureSettings{
							FramerateNumerator:   aws.Int32(1),
							FramerateDenominator: aws.Int32(1),
							MaxCaptures:          aws.Int32(1),
							Quality:              aws.Int32(80),
						},
					},
				},
			}},
		})
	}
	in := &mediaconvert.CreateJobInput{
		Role:                 aws.String(m.cfg.RoleARN),
		ClientRequestToken:   aws.String(spec.Token),
		StatusUpdateInterval: types.StatusUpdateIntervalSeconds15,
		UserMetadata: map[string]string{
			"atomId":   spec.AtomID,
			"uploadId": spec.UploadID,
		},
		Settings: &types.JobSettings{
			Inputs: []types.Input{{
				FileInput:      aws.String("s3://" + spec.SourceBucket + "/" + spec.SourceKey),
				TimecodeSource: types.InputTimecodeSourceZerobased,
				AudioSelectors: map[string]types.AudioSelector{
					audioSelector: {DefaultSelection: types.AudioDefaultSelectionDefault},
				},
			}},
			OutputGroups: groups,
		},
	}
	if m.cfg.Queue != "" {
		in.Queue = aws.String(m.cfg.Queue)
	}
	return in
}
