package transcode

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
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
	SearchJobs(ctx context.Context, in *mediaconvert.SearchJobsInput, optFns ...func(*mediaconvert.Options)) (*mediaconvert.SearchJobsOutput, error)
	Probe(ctx context.Context, in *mediaconvert.ProbeInput, optFns ...func(*mediaconvert.Options)) (*mediaconvert.ProbeOutput, error)
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
	// PosterFrame adds a JPEG of the first frame, at the size of the
	// highest rendition, as <atomId>/<uploadId>/poster.0000000.jpg.
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
// Start probes the original (MediaConvert's Probe), fits the ladder to it
// (Ladder) and submits one job that writes the layout of package
// transcode (see HLSDir): a CMAF output group with HLS manifests only
// (fMP4 segments, a video-only output per rung and one audio output), a
// file group with the progressive MP4 of the highest rung, and a frame
// capture group with the poster.
//
// One job per attempt, always: the job carries the upload's ids and the
// Spec's Token in its user metadata, and before creating one Start looks
// for a job already created for the upload's original (SearchJobs by input
// file). See Start.
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

// User metadata keys of the jobs this backend creates.
const (
	metaAtomID   = "atomId"
	metaUploadID = "uploadId"
	metaToken    = "token"
)

// searchPages bounds the job search: an upload has a few jobs at most.
const searchPages = 10

// Start submits the job, or returns the job already submitted for it.
//
// Before CreateJob it searches the queue's jobs of the same input file (the
// upload's original) for one of this upload (user metadata) that either
// carries the same Token or has not failed (submitted, progressing or
// complete), and returns it. So a process that dies between CreateJob and
// recording the job id, and whose work is picked up later, by any instance,
// finds the job instead of starting a second one. Two instances starting
// the same attempt at the same moment both find nothing and both call
// CreateJob with the Token as ClientRequestToken, which MediaConvert
// answers with the one job. A new attempt (a new Token, after the job
// failed) starts a new job.
func (m *MediaConvert) Start(ctx context.Context, spec Spec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID, err)
	}
	input := "s3://" + spec.SourceBucket + "/" + spec.SourceKey
	id, err := m.findJob(ctx, spec, input)
	if err != nil {
		return "", fmt.Errorf("start transcode %s/%s: look for its job: %w", spec.AtomID, spec.UploadID, mediaConvertError(err))
	}
	if id != "" {
		return id, nil
	}
	src, err := m.probe(ctx, input)
	if err != nil {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID, err)
	}
	ladder, err := Ladder(m.renditions, src)
	if err != nil {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID, upload.Errorf(upload.EINVALID, "%s", err.Error()))
	}
	out, err := m.api.CreateJob(ctx, m.createJobInput(spec, src, ladder))
	if err != nil {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID, mediaConvertError(err))
	}
	if out.Job == nil || aws.ToString(out.Job.Id) == "" {
		return "", fmt.Errorf("start transcode %s/%s: %w", spec.AtomID, spec.UploadID,
			upload.Errorf(upload.EINTERNAL, "MediaConvert returned no job id"))
	}
	return aws.ToString(out.Job.Id), nil
}

// findJob returns the id of the job to reuse for spec (see Start), or "".
func (m *MediaConvert) findJob(ctx context.Context, spec Spec, input string) (string, error) {
	in := &mediaconvert.SearchJobsInput{
		InputFile:  aws.String(input),
		Order:      types.OrderDescending,
		MaxResults: aws.Int32(20),
	}
	if m.cfg.Queue != "" {
		in.Queue = aws.String(m.cfg.Queue)
	}
	live := ""
	for range searchPages {
		out, err := m.api.SearchJobs(ctx, in)
		if err != nil {
			return "", err
		}
		for _, j := range out.Jobs {
			md := j.UserMetadata
			if md[metaUploadID] != spec.UploadID || md[metaAtomID] != spec.AtomID || aws.ToString(j.Id) == "" {
				continue
			}
			if md[metaToken] == spec.Token || aws.ToString(j.ClientRequestToken) == spec.Token {
				return aws.ToString(j.Id), nil
			}
			if live == "" && j.Status != types.JobStatusError && j.Status != types.JobStatusCanceled {
				live = aws.ToString(j.Id) // the newest first
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	return live, nil
}

// probe asks MediaConvert what the original is: its first video track's
// size and frame rate, and whether it has sound.
func (m *MediaConvert) probe(ctx context.Context, input string) (Source, error) {
	out, err := m.api.Probe(ctx, &mediaconvert.ProbeInput{InputFiles: []types.ProbeInputFile{{FileUrl: aws.String(input)}}})
	if err != nil {
		return Source{}, mediaConvertError(err)
	}
	var src Source
	found := false
	for _, r := range out.ProbeResults {
		if r.Container == nil {
			continue
		}
		src.Duration = aws.ToFloat64(r.Container.Duration)
		for _, t := range r.Container.Tracks {
			switch {
			case t.TrackType == types.TrackTypeAudio:
				src.HasAudio = true
			case t.TrackType == types.TrackTypeVideo && !found && t.VideoProperties != nil:
				v := t.VideoProperties
				src.Width, src.Height = int(aws.ToInt32(v.Width)), int(aws.ToInt32(v.Height))
				if (src.Width == 0 || src.Height == 0) && v.CodecMetadata != nil {
					src.Width, src.Height = int(aws.ToInt32(v.CodecMetadata.Width)), int(aws.ToInt32(v.CodecMetadata.Height))
				}
				if fr := v.FrameRate; fr != nil && aws.ToInt32(fr.Denominator) > 0 {
					src.FrameRate = float64(aws.ToInt32(fr.Numerator)) / float64(aws.ToInt32(fr.Denominator))
				}
				found = src.Width > 0 && src.Height > 0
			}
		}
		break // one input file, one result
	}
	if !found {
		return Source{}, upload.Errorf(upload.EINVALID, "input is not a video: MediaConvert found no video stream in it")
	}
	return src, nil
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
		job.Outputs, job.Playback = mediaConvertOutputs(j.Settings)
	case types.JobStatusCanceled:
		job.State = StateError
		job.Error = "MediaConvert job was cancelled"
	case types.JobStatusError:
		job.State = StateError
		job.Error = mediaConvertJobError(aws.ToInt32(j.ErrorCode), aws.ToString(j.ErrorMessage))
	default:
		// A status this code does not know yet: report it as still running
		// rather than inventing an outcome.
		job.State = StateProgressing
	}
	job.Percent = min(max(job.Percent, 0), 100)
	return job
}

var (
	s3URL       = regexp.MustCompile(`\[?s3://[^\s\]]+\]?`)
	httpURL     = regexp.MustCompile(`\[?https?://[^\s\]]+\]?`)
	extraSpaces = regexp.MustCompile(`\s{2,}`)
	spaceColon  = regexp.MustCompile(`\s+:`)
)

// mediaConvertJobError words the failure of a job for people: what went
// wrong, by MediaConvert's error code (see its "Error codes" page), then
// MediaConvert's own message without the S3 addresses and brackets that
// mean nothing to them, and the code for whoever looks it up.
func mediaConvertJobError(code int32, message string) string {
	var what string
	switch {
	case code == 1010:
		what = "MediaConvert could not open the original: it may not be a video file it can read"
	case code >= 1020 && code < 1100:
		what = "MediaConvert could not read the video in the original"
	case code >= 1400 && code < 1500:
		what = "MediaConvert could not write the outputs; check its role's access to the output bucket"
	case code >= 1500 && code < 2000:
		what = "MediaConvert failed while transcoding the video"
	case code >= 3400 && code < 4000:
		what = "MediaConvert could not run the job; check its role and settings"
	default:
		what = "MediaConvert failed the transcode"
	}
	msg := s3URL.ReplaceAllString(message, "")
	msg = httpURL.ReplaceAllString(msg, "")
	msg = strings.NewReplacer("[", "", "]", "").Replace(msg)
	msg = spaceColon.ReplaceAllString(extraSpaces.ReplaceAllString(msg, " "), ":")
	msg = strings.Trim(msg, " :.;,")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg != "" {
		what += " (" + msg + ")"
	}
	if code != 0 {
		what += fmt.Sprintf(" [MediaConvert error %d]", code)
	}
	return what
}

// mediaConvertOutputs lists the outputs the job writes, from its own
// settings (GetJob does not return output paths), following the naming of
// MediaConvert: for a CMAF group with destination <base>, the master
// playlist <base>.m3u8 and a media playlist <base><nameModifier>.m3u8 per
// output; for a file group, <destination><nameModifier>.<ext>, and
// <destination><nameModifier>.0000000.jpg for a single frame capture.
// Playback is the key of the CMAF group's master playlist ("" for jobs of
// the older layout, which had none).
func mediaConvertOutputs(s *types.JobSettings) (outputs []Output, playback string) {
	if s == nil {
		return nil, ""
	}
	for _, g := range s.OutputGroups {
		gs := g.OutputGroupSettings
		switch {
		case gs == nil:
		case gs.CmafGroupSettings != nil:
			base, ok := s3Key(aws.ToString(gs.CmafGroupSettings.Destination))
			if !ok {
				continue
			}
			playback = base + ".m3u8"
			outputs = append(outputs, Output{Key: playback, Kind: KindHLS})
			audio := 0
			for _, o := range g.Outputs {
				if o.VideoDescription == nil {
					audio = max(audio, aacBitrate(o.AudioDescriptions))
				}
			}
			var audioOut []Output
			for _, o := range g.Outputs {
				key := base + aws.ToString(o.NameModifier) + ".m3u8"
				if v := o.VideoDescription; v != nil {
					outputs = append(outputs, Output{Key: key, Kind: KindHLSVideo,
						Width: int(aws.ToInt32(v.Width)), Height: int(aws.ToInt32(v.Height)), Bitrate: h264MaxBitrate(v) + audio})
				} else {
					audioOut = append(audioOut, Output{Key: key, Kind: KindHLSAudio, Bitrate: aacBitrate(o.AudioDescriptions)})
				}
			}
			outputs = append(outputs, audioOut...)
		case gs.FileGroupSettings != nil:
			base, ok := s3Key(aws.ToString(gs.FileGroupSettings.Destination))
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
	}
	return outputs, playback
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

const audioSelector = "Audio Selector 1"

// h264 is the video of one rung: H.264 High, QVBR under the rung's
// maximum, a closed GOP of GOPSeconds (so segments align across rungs),
// at the source's frame rate and pixel aspect ratio.
func h264(e Encoding) *types.VideoDescription {
	return &types.VideoDescription{
		Width:  aws.Int32(int32(e.Width)),
		Height: aws.Int32(int32(e.Height)),
		CodecSettings: &types.VideoCodecSettings{
			Codec: types.VideoCodecH264,
			H264Settings: &types.H264Settings{
				RateControlMode:    types.H264RateControlModeQvbr,
				MaxBitrate:         aws.Int32(int32(e.VideoBitrate)),
				QvbrSettings:       &types.H264QvbrSettings{QvbrQualityLevel: aws.Int32(7)},
				QualityTuningLevel: types.H264QualityTuningLevelSinglePassHq,
				SceneChangeDetect:  types.H264SceneChangeDetectTransitionDetection,
				CodecProfile:       types.H264CodecProfileHigh,
				CodecLevel:         types.H264CodecLevelAuto,
				FramerateControl:   types.H264FramerateControlInitializeFromSource,
				ParControl:         types.H264ParControlSpecified,
				ParNumerator:       aws.Int32(1),
				ParDenominator:     aws.Int32(1),
				GopSize:            aws.Float64(GOPSeconds),
				GopSizeUnits:       types.H264GopSizeUnitsSeconds,
			},
		},
	}
}

func aac(bitrate int) []types.AudioDescription {
	return []types.AudioDescription{{
		AudioSourceName: aws.String(audioSelector),
		CodecSettings: &types.AudioCodecSettings{
			Codec: types.AudioCodecAac,
			AacSettings: &types.AacSettings{
				Bitrate:         aws.Int32(int32(bitrate)),
				CodingMode:      types.AacCodingModeCodingMode20,
				SampleRate:      aws.Int32(48000),
				CodecProfile:    types.AacCodecProfileLc,
				RateControlMode: types.AacRateControlModeCbr,
			},
		},
	}}
}

func (m *MediaConvert) createJobInput(spec Spec, src Source, ladder []Encoding) *mediaconvert.CreateJobInput {
	dest := "s3://" + m.cfg.DestinationBucket + "/" + OutputPrefix(spec.AtomID, spec.UploadID)
	top := ladder[0]
	abr := audioBitrate(ladder)

	// HLS: one CMAF group, fMP4 segments of SegmentSeconds, HLS manifests
	// only, a video-only output per rung and one audio output.
	var hls []types.Output
	for _, e := range ladder {
		hls = append(hls, types.Output{
			NameModifier:      aws.String("_" + e.Name),
			ContainerSettings: &types.ContainerSettings{Container: types.ContainerTypeCmfc},
			VideoDescription:  h264(e),
		})
	}
	if src.HasAudio {
		hls = append(hls, types.Output{
			NameModifier:      aws.String("_" + AudioName),
			ContainerSettings: &types.ContainerSettings{Container: types.ContainerTypeCmfc},
			AudioDescriptions: aac(abr),
		})
	}
	groups := []types.OutputGroup{{
		Name: aws.String("hls"),
		OutputGroupSettings: &types.OutputGroupSettings{
			Type: types.OutputGroupTypeCmafGroupSettings,
			CmafGroupSettings: &types.CmafGroupSettings{
				Destination:            aws.String(dest + HLSDir + MasterName),
				SegmentControl:         types.CmafSegmentControlSegmentedFiles,
				SegmentLength:          aws.Int32(SegmentSeconds),
				FragmentLength:         aws.Int32(GOPSeconds),
				WriteHlsManifest:       types.CmafWriteHLSManifestEnabled,
				WriteDashManifest:      types.CmafWriteDASHManifestDisabled,
				StreamInfResolution:    types.CmafStreamInfResolutionInclude,
				CodecSpecification:     types.CmafCodecSpecificationRfc6381,
				ManifestDurationFormat: types.CmafManifestDurationFormatFloatingPoint,
			},
		},
		Outputs: hls,
	}}

	// The progressive MP4 of the highest rung.
	mp4 := types.Output{
		ContainerSettings: &types.ContainerSettings{
			Container:   types.ContainerTypeMp4,
			Mp4Settings: &types.Mp4Settings{MoovPlacement: types.Mp4MoovPlacementProgressiveDownload},
		},
		VideoDescription: h264(top),
	}
	if src.HasAudio {
		mp4.AudioDescriptions = aac(abr)
	}
	groups = append(groups, types.OutputGroup{
		Name: aws.String("mp4"),
		OutputGroupSettings: &types.OutputGroupSettings{
			Type:              types.OutputGroupTypeFileGroupSettings,
			FileGroupSettings: &types.FileGroupSettings{Destination: aws.String(dest + top.Name)},
		},
		Outputs: []types.Output{mp4},
	})

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
					Width:  aws.Int32(int32(top.Width)),
					Height: aws.Int32(int32(top.Height)),
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
	input := types.Input{
		FileInput:      aws.String("s3://" + spec.SourceBucket + "/" + spec.SourceKey),
		TimecodeSource: types.InputTimecodeSourceZerobased,
	}
	if src.HasAudio {
		input.AudioSelectors = map[string]types.AudioSelector{
			audioSelector: {DefaultSelection: types.AudioDefaultSelectionDefault},
		}
	}
	in := &mediaconvert.CreateJobInput{
		Role:                 aws.String(m.cfg.RoleARN),
		ClientRequestToken:   aws.String(spec.Token),
		StatusUpdateInterval: types.StatusUpdateIntervalSeconds15,
		UserMetadata: map[string]string{
			metaAtomID:   spec.AtomID,
			metaUploadID: spec.UploadID,
			metaToken:    spec.Token,
		},
		Settings: &types.JobSettings{
			Inputs:       []types.Input{input},
			OutputGroups: groups,
		},
	}
	if m.cfg.Queue != "" {
		in.Queue = aws.String(m.cfg.Queue)
	}
	return in
}
