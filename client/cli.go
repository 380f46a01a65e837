package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"atomuploads/api/rest"
	"atomuploads/upload"
)

// Exit statuses of Main.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// Environment variables Main reads for flag defaults.
const (
	EnvAPI        = "ATOM_UPLOADS_API"
	EnvToken      = "ATOM_UPLOADS_TOKEN"
	EnvS3Endpoint = "AWS_ENDPOINT_URL_S3"
	defaultAPI    = "http://127.0.0.1:8080"
	maxParallel   = 64
)

// Main runs `atom-uploads upload [flags] FILE` and returns the exit status:
// 0 when the upload is complete (or, with --no-follow, when its parts are
// in S3), 1 when it failed or was cancelled or on errors, 2 for a usage
// error and 130 when ctx is cancelled (Ctrl-C), after saying how to resume.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, options{getenv: os.Getenv})
}

// options are what tests change in Main.
type options struct {
	getenv        func(string) string
	apiHTTP       *http.Client
	s3HTTP        *http.Client
	refreshBefore time.Duration
	retryBackoff  time.Duration
	tty           *bool // overrides the terminal check of stderr
}

// settings are the parsed command line.
type settings struct {
	api, token, atom string
	apiSet           bool // --api was given: repeat it in the resume hint
	resume           string
	parallel         int
	noFollow         bool
	noSHA256         bool
	poll             time.Duration
	s3Endpoint       string
	s3EndpointSet    bool
	s3PathStyle      bool
	destinations     []rest.DestinationRequest
	file             string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, o options) int {
	if o.getenv == nil {
		o.getenv = os.Getenv
	}
	s, err := parseArgs(args, o.getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return usageError(stderr, err)
	}
	f, size, err := openFile(s.file)
	if err != nil {
		return usageError(stderr, err)
	}
	defer f.Close()
	tty := isTerminal(stderr)
	if o.tty != nil {
		tty = *o.tty
	}
	r := &runner{
		s: s, file: f, size: size, stdout: stdout, stderr: stderr, tty: tty,
		c: &Client{
			BaseURL: s.api, Token: s.token, HTTPClient: o.apiHTTP,
			S3Endpoint: s.s3Endpoint, S3PathStyle: s.s3PathStyle, S3HTTPClient: o.s3HTTP,
			RefreshBefore: o.refreshBefore, RetryBackoff: o.retryBackoff,
		},
	}
	return r.run(ctx)
}

func usageError(stderr io.Writer, err error) int {
	msg := err.Error()
	if !strings.HasPrefix(msg, "\n") { // one problem: on the same line
		msg = " " + msg
	}
	fmt.Fprintf(stderr, "atom-uploads upload:%s\nRun 'atom-uploads upload -h' for usage.\n", msg)
	return exitUsage
}

const usageText = `Usage: atom-uploads upload --atom ID [destinations] [flags] FILE

Uploads a video for a media atom as the media tool does: starts an upload
through the atom-uploads API, puts its parts straight into S3 with temporary
credentials, then follows each destination until the upload is done.

Destinations (at least one for a new upload):
  --youtube-title T      publish on YouTube with this title
  --s3                   transcode for self-hosting

Flags:
`

var categoryPattern = regexp.MustCompile(`^[0-9]{1,4}$`)

// parseArgs parses the flags (before or after FILE) and checks them. Every
// error says what to fix.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("atom-uploads upload", flag.ContinueOnError)
	// Errors are reported by the caller in one message; -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// Defaults from the environment are applied after parsing, so that -h
	// never shows the token.
	fs.StringVar(&s.api, "api", "", "atom-uploads API base URL (default $"+EnvAPI+", else "+defaultAPI+")")
	fs.StringVar(&s.token, "token", "", "API bearer token (default $"+EnvToken+"; required)")
	fs.StringVar(&s.atom, "atom", "", "media atom id (required)")
	ytTitle := fs.String("youtube-title", "", "add a YouTube destination with this title")
	ytDesc := fs.String("youtube-description", "", "YouTube description")
	ytTags := fs.String("youtube-tags", "", "YouTube tags, comma separated: a,b")
	ytCategory := fs.String("youtube-category", "", "YouTube category number, such as 25 (news)")
	ytPrivacy := fs.String("youtube-privacy", "private", "YouTube privacy: private, unlisted or public")
	toS3 := fs.Bool("s3", false, "add an s3Bucket destination (transcode for self-hosting)")
	fs.StringVar(&s.resume, "resume", "", "continue upload `UPLOAD_ID` of this FILE: put only the parts not yet in, then follow")
	fs.IntVar(&s.parallel, "parallel", DefaultParallel, "parts in flight at once")
	fs.BoolVar(&s.noFollow, "no-follow", false, "stop once the parts are uploaded")
	fs.BoolVar(&s.noSHA256, "no-sha256", false, "do not read the file once first to send its SHA-256 (the service then cannot prove the whole file)")
	fs.DurationVar(&s.poll, "poll", DefaultPoll, "how often to read the upload's progress while following")
	fs.StringVar(&s.s3Endpoint, "s3-endpoint", "", "S3 endpoint URL, for a local stack (default $"+EnvS3Endpoint+")")
	fs.BoolVar(&s.s3PathStyle, "s3-path-style", false, "path-style S3 addressing (default true when an endpoint is given)")

	// The flag package stops at the first argument that is not a flag:
	// parse again after each one so that flags may follow FILE.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stderr)
				fmt.Fprint(stderr, usageText)
				fs.PrintDefaults()
			}
			return s, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		files, args = append(files, args[0]), args[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var problems []string
	switch len(files) {
	case 0:
		problems = append(problems, "name the video FILE to upload")
	case 1:
		s.file = files[0]
	default:
		problems = append(problems, fmt.Sprintf("name one FILE, not %d (%s)", len(files), strings.Join(files, " ")))
	}

	if !set["api"] {
		s.api = getenv(EnvAPI)
	}
	s.apiSet = set["api"]
	if s.api == "" {
		s.api = defaultAPI
	}
	if u, err := url.Parse(s.api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("--api %q is not an http(s) URL such as %s", s.api, defaultAPI))
	}
	if !set["token"] {
		s.token = getenv(EnvToken)
	}
	if s.token == "" {
		problems = append(problems, "--token is required: pass the API's bearer token, or set "+EnvToken)
	}
	switch {
	case s.atom == "":
		problems = append(problems, "--atom is required: pass the id of the media atom the video is for")
	case !upload.ValidAtomID(s.atom):
		problems = append(problems, fmt.Sprintf("--atom %q is not an atom id (letters, digits, '-' and '_')", s.atom))
	}

	// Destinations.
	for _, name := range []string{"youtube-description", "youtube-tags", "youtube-category", "youtube-privacy"} {
		if set[name] && !set["youtube-title"] {
			problems = append(problems, fmt.Sprintf("--%s applies to a YouTube destination: add --youtube-title", name))
		}
	}
	if set["youtube-title"] {
		d := rest.DestinationRequest{Type: YouTube, Title: strings.TrimSpace(*ytTitle), Description: *ytDesc,
			CategoryID: *ytCategory, PrivacyStatus: *ytPrivacy}
		if d.Title == "" {
			problems = append(problems, "--youtube-title must not be empty")
		}
		for _, t := range strings.Split(*ytTags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				d.Tags = append(d.Tags, t)
			}
		}
		if d.CategoryID != "" && !categoryPattern.MatchString(d.CategoryID) {
			problems = append(problems, fmt.Sprintf("--youtube-category %q must be a YouTube category number such as 25", d.CategoryID))
		}
		switch d.PrivacyStatus {
		case "private", "unlisted", "public":
		default:
			problems = append(problems, fmt.Sprintf("--youtube-privacy %q must be private, unlisted or public", d.PrivacyStatus))
		}
		s.destinations = append(s.destinations, d)
	}
	if *toS3 {
		s.destinations = append(s.destinations, rest.DestinationRequest{Type: S3Bucket})
	}
	if s.resume == "" && len(s.destinations) == 0 {
		problems = append(problems, "name at least one destination: --youtube-title TITLE (YouTube) and/or --s3 (transcode for self-hosting)")
	}
	if s.resume != "" && !upload.ValidUploadID(s.resume) {
		problems = append(problems, fmt.Sprintf("--resume %q is not an upload id (26 characters, 0-9 and A-Z, as printed when the upload started)", s.resume))
	}

	if s.parallel < 1 || s.parallel > maxParallel {
		problems = append(problems, fmt.Sprintf("--parallel must be from 1 to %d, got %d", maxParallel, s.parallel))
	}
	if s.poll <= 0 {
		problems = append(problems, fmt.Sprintf("--poll must be a positive duration such as 2s, got %s", s.poll))
	}
	s.s3EndpointSet = set["s3-endpoint"]
	if !set["s3-endpoint"] {
		s.s3Endpoint = getenv(EnvS3Endpoint)
	}
	if s.s3Endpoint != "" {
		if u, err := url.Parse(s.s3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("--s3-endpoint %q is not an http(s) URL", s.s3Endpoint))
		}
	}
	if !set["s3-path-style"] {
		s.s3PathStyle = s.s3Endpoint != ""
	}
	switch len(problems) {
	case 0:
		return s, nil
	case 1:
		return s, errors.New(problems[0])
	}
	return s, errors.New("\n  - " + strings.Join(problems, "\n  - "))
}

// openFile opens the file to upload and returns its size.
func openFile(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("file %s does not exist: name the video file to upload", path)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("cannot read %s: %w", path, err)
	}
	switch {
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file: name the video file to upload", path)
	case fi.Size() == 0:
		f.Close()
		return nil, 0, fmt.Errorf("%s is empty: name the video file to upload", path)
	}
	return f, fi.Size(), nil
}

// videoTypes are the media types of video extensions that the system's MIME
// table may not know (the Go table has no video types).
var videoTypes = map[string]string{
	".mp4": "video/mp4", ".m4v": "video/x-m4v", ".mov": "video/quicktime", ".webm": "video/webm",
	".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".mpg": "video/mpeg", ".mpeg": "video/mpeg",
	".ts": "video/mp2t", ".3gp": "video/3gpp", ".wmv": "video/x-ms-wmv", ".flv": "video/x-flv",
}

// contentType is the file's media type by its extension: a video/* type,
// else application/octet-stream (the API takes nothing else).
func contentType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if t := mime.TypeByExtension(ext); t != "" {
		if mt, _, err := mime.ParseMediaType(t); err == nil && strings.HasPrefix(mt, "video/") {
			return mt
		}
	}
	if t, ok := videoTypes[ext]; ok {
		return t
	}
	return "application/octet-stream"
}

// runner carries one run of the command; the context is passed, not kept.
type runner struct {
	s      settings
	c      *Client
	file   *os.File
	size   int64
	stdout io.Writer
	stderr io.Writer
	tty    bool
}

func (r *runner) run(ctx context.Context) int {
	rec, code, ok := r.record(ctx)
	if !ok {
		return code
	}
	if rec.Status == StatusUploading && partsLeft(rec) > 0 {
		if code, ok := r.putParts(ctx, rec); !ok {
			return code
		}
	}
	if r.s.noFollow {
		fmt.Fprintf(r.stdout, "not following upload %s; follow it with: %s\n", rec.ID, r.resumeCommand(rec.ID))
		return exitOK
	}
	final, err := r.c.Follow(ctx, r.s.atom, rec.ID, r.s.poll, r.stdout)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(r.stderr, "stopped following upload %s; it goes on without this command. Follow it again with: %s\n",
				rec.ID, r.resumeCommand(rec.ID))
			return exitInterrupted
		}
		fmt.Fprintf(r.stderr, "atom-uploads upload: %v\n", err)
		return exitFailed
	}
	PrintSummary(r.stdout, final)
	return exitCode(final)
}

// record starts the upload, or reads the one to resume. ok is false when
// the command ends with code.
func (r *runner) record(ctx context.Context) (rec *rest.Upload, code int, ok bool) {
	name := filepath.Base(r.s.file)
	if r.s.resume == "" {
		req := rest.StartRequest{Filename: name, Size: r.size, ContentType: contentType(name), Destinations: r.s.destinations}
		if !r.s.noSHA256 {
			sum, err := fileSHA256(ctx, r.s.file)
			if err != nil {
				return nil, r.fail(ctx, err, ""), false
			}
			req.SHA256 = sum
		}
		rec, err := r.c.Start(ctx, r.s.atom, req)
		if err != nil {
			return nil, r.fail(ctx, err, ""), false
		}
		fmt.Fprintf(r.stdout, "upload %s started: %s, %s in %d parts\n", rec.ID, rec.Filename, humanBytes(rec.Size), len(rec.Parts))
		return rec, 0, true
	}
	if len(r.s.destinations) > 0 {
		fmt.Fprintln(r.stderr, "note: --resume keeps the upload's own destinations; --youtube-*/--s3 are ignored")
	}
	rec, err := r.c.Get(ctx, r.s.atom, r.s.resume)
	if err != nil {
		return nil, r.fail(ctx, err, ""), false
	}
	if rec.Size != r.size {
		return nil, usageError(r.stderr, fmt.Errorf("%s is %d bytes but upload %s is of a %d-byte file (%s): resume with the file that started it",
			r.s.file, r.size, rec.ID, rec.Size, rec.Filename)), false
	}
	if rec.Filename != name {
		fmt.Fprintf(r.stderr, "note: upload %s was started with %s, not %s (same size: going on)\n", rec.ID, rec.Filename, name)
	}
	if Terminal(rec.Status) {
		PrintSummary(r.stdout, rec)
		return nil, exitCode(rec), false
	}
	left := partsLeft(rec)
	if rec.Status != StatusUploading || left == 0 {
		fmt.Fprintf(r.stdout, "upload %s is %s: every part is in\n", rec.ID, rec.Status)
		return rec, 0, true
	}
	// Fresh credentials first: this also fails early, with the API's
	// reason, when the upload no longer takes parts.
	cr, err := r.c.Credentials(ctx, rec.AtomID, rec.ID)
	if err != nil {
		return nil, r.fail(ctx, err, rec.ID), false
	}
	rec.Credentials = &cr
	fmt.Fprintf(r.stdout, "resuming upload %s: %d of %d parts to put\n", rec.ID, left, len(rec.Parts))
	return rec, 0, true
}

// partsLeft counts the parts the record does not show complete.
func partsLeft(rec *rest.Upload) int {
	n := 0
	for _, p := range rec.Parts {
		if !p.Complete {
			n++
		}
	}
	return n
}

// putParts puts the parts the record does not show complete, with progress
// on stderr.
func (r *runner) putParts(ctx context.Context, rec *rest.Upload) (int, bool) {
	pp := &progressPrinter{w: r.stderr, tty: r.tty}
	err := r.c.PutParts(ctx, rec, r.file, PutOptions{Parallel: r.s.parallel, Progress: pp.update})
	pp.finish()
	if err != nil {
		return r.fail(ctx, err, rec.ID), false
	}
	fmt.Fprintf(r.stdout, "upload %s: all %d parts are in S3\n", rec.ID, len(rec.Parts))
	return 0, true
}

// fail reports err and returns the exit status: 130 when ctx was cancelled.
// With an upload id, it says how to resume.
func (r *runner) fail(ctx context.Context, err error, uploadID string) int {
	if ctx.Err() != nil {
		if uploadID == "" {
			fmt.Fprintln(r.stderr, "interrupted before the upload started")
		} else {
			fmt.Fprintf(r.stderr, "interrupted: upload %s is not finished. Resume it with: %s\n", uploadID, r.resumeCommand(uploadID))
		}
		return exitInterrupted
	}
	fmt.Fprintf(r.stderr, "atom-uploads upload: %v\n", err)
	if uploadID != "" {
		fmt.Fprintf(r.stderr, "to try again: %s\n", r.resumeCommand(uploadID))
	}
	return exitFailed
}

// resumeCommand is the command line that resumes or follows the upload
// (without the token).
func (r *runner) resumeCommand(uploadID string) string {
	parts := []string{"atom-uploads", "upload"}
	if r.s.apiSet {
		parts = append(parts, "--api", shellQuote(r.s.api))
	}
	if r.s.s3EndpointSet {
		parts = append(parts, "--s3-endpoint", shellQuote(r.s.s3Endpoint))
	}
	parts = append(parts, "--atom", shellQuote(r.s.atom), "--resume", uploadID, shellQuote(r.s.file))
	return strings.Join(parts, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fileSHA256 reads the file once and returns its SHA-256 in hex.
func fileSHA256(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	// Cancellable: the read stops between blocks when ctx ends.
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
	}
}
