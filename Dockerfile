# syntax=docker/dockerfile:1
# atom-uploads: one static binary in a minimal, non-root image.
#   docker build --build-arg VERSION=$(git describe --always) -t atom-uploads .
#   docker build --target ffmpeg -t atom-uploads:ffmpeg .   # with ffmpeg, for transcode.backend=ffmpeg
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/atom-uploads .

# Self-hosting with the local ffmpeg transcoder (Debian's ffmpeg).
FROM debian:bookworm-slim AS ffmpeg
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 65532 --no-create-home nonroot
COPY --from=build /out/atom-uploads /atom-uploads
COPY config.yaml /etc/atom-uploads/config.yaml
ENV UPLOADS_CONFIG=/etc/atom-uploads/config.yaml
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["/atom-uploads", "healthcheck"]
ENTRYPOINT ["/atom-uploads"]

# The default image: no shell, no package manager; the binary is its own
# health check. config.yaml (the defaults, also embedded in the binary) is
# the file to replace by mounting an operator configuration over it.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/atom-uploads /atom-uploads
COPY config.yaml /etc/atom-uploads/config.yaml
ENV UPLOADS_CONFIG=/etc/atom-uploads/config.yaml
USER nonroot:nonroot
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["/atom-uploads", "healthcheck"]
ENTRYPOINT ["/atom-uploads"]
