// uploader.js: the reference uploader of atom-uploads, an ES module with no
// framework. It does in a browser what the CLI (client/) does in Go:
//
//   import { startUpload, resumeUpload } from './uploader.js';
//   const api = { baseUrl: 'https://uploads.example', token, s3: { endpoint: '', pathStyle: false } };
//   const record = await startUpload(api, atomId, file,
//       [{ type: 'youtube', title: 'A clip' }, { type: 's3Bucket' }],
//       { onProgress: (ev) => console.log(ev), signal: abortController.signal });
//
// startUpload starts the upload (POST …/uploads), PUTs the parts straight to
// S3 with the temporary credentials the service returns (a bounded pool,
// default 4 parts in flight), refreshes the credentials before they expire
// (POST …/credentials), retries a failed part with backoff, and then follows
// the destinations until the upload is complete, failed or cancelled.
// resumeUpload does the same for an upload that was started earlier (a tab
// reloaded half-way): it asks the service which parts are missing
// (GET …/uploads/{id}, parts[].complete) and sends only those.
//
// Signing is SigV4 with a session token, by aws4fetch (vendor/, MIT, npm
// 1.0.20): well-kept, one small file, WebCrypto underneath, so it needs a
// secure context (https, or http on localhost / 127.0.0.1). The bucket must
// allow the page's origin by CORS (README, "Bucket CORS").
//
// Progress events (options.onProgress), each an object with a `type`:
//   started     {upload}                       the record, without credentials
//   resumed     {upload, missing}              part numbers still to send
//   credentials {expiry, refreshed}            fresh credentials (never the secrets)
//   bytes       {bytesDone, size, partsDone, partsTotal}  byte-level, while parts go up
//   part        {part, etag, bytesDone, size, partsDone, partsTotal}  a part is in S3
//   retry       {part, attempt, waitMs, error} a part failed and is tried again
//   sent        {upload}                       every part is in S3
//   status      {upload}                       the record, while following the destinations
//   warning     {message}                      something to fix that did not stop the upload

import { AwsV4Signer } from './vendor/aws4fetch-1.0.20.esm.js';

export const DEFAULTS = Object.freeze({
  parallel: 4, // parts in flight at once
  attempts: 5, // tries of one part before the upload fails
  backoffMs: 1000, // first wait before a retry; doubles, jittered
  maxBackoffMs: 30000,
  refreshBeforeMs: 5 * 60 * 1000, // refresh credentials this long before they expire (at most half their life)
  pollMs: 2000, // how often the destinations are followed
  follow: true, // false: resolve once the parts are in S3
  // Each part carries x-amz-checksum-sha256 (computed per part with
  // WebCrypto, sha256Base64 below, and signed), which S3 verifies on the PUT
  // and the service pins the part by; a service with
  // uploads.requirePartChecksums refuses parts without it. The whole file's
  // SHA-256 is not sent: WebCrypto cannot hash a file of tens of GB without
  // holding it in memory (the CLI client sends it).
  checksum: true,
});

const TERMINAL = new Set(['complete', 'failed', 'cancelled', 'expired']);

/** An error to show to people: `message` says what is wrong in plain words. */
export class UploadError extends Error {
  constructor(message, { status = 0, code = '', retryable = false, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'UploadError';
    this.status = status; // HTTP status, 0 when there was no answer
    this.code = code; // S3's error code, when S3 answered
    this.retryable = retryable;
  }
}

function abortError(signal) {
  return signal && signal.reason instanceof Error ? signal.reason : new DOMException('The upload was stopped.', 'AbortError');
}

export function isAbort(err) {
  return err && err.name === 'AbortError';
}

// ---- the REST API --------------------------------------------------------

// Server time minus local time, from the API's Date header: S3 refuses a
// signature whose clock is more than 15 minutes off, and credentials expire
// by the server's clock.
let clockOffsetMs = 0;

function noteServerDate(res) {
  const d = Date.parse(res.headers.get('Date') || '');
  if (!Number.isNaN(d)) {
    const off = d - Date.now();
    // Date has second resolution: ignore what is only rounding.
    clockOffsetMs = Math.abs(off) > 60000 ? off : 0;
  }
}

function serverNow() {
  return Date.now() + clockOffsetMs;
}

/**
 * apiRequest calls the atom-uploads API and returns the decoded JSON body.
 * A non-2xx answer throws an UploadError with the service's own message.
 */
export async function apiRequest(api, method, path, body, signal) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${api.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`${api.baseUrl || ''}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new UploadError('Could not reach the upload service. Check the connection and try again.', { retryable: true, cause: err });
  }
  noteServerDate(res);
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    let message = (data && data.message) || `The upload service answered ${res.status} ${res.statusText}.`;
    if (res.status === 401) message = 'The API token was not accepted. Enter it again.';
    throw new UploadError(message, { status: res.status, retryable: res.status >= 500 || res.status === 429 });
  }
  return data;
}

const enc = encodeURIComponent;
const uploadsPath = (atomId) => `/api2/atom/${enc(atomId)}/uploads`;
const uploadPath = (atomId, id) => `${uploadsPath(atomId)}/${enc(id)}`;

export function getUpload(api, atomId, uploadId, signal) {
  return apiRequest(api, 'GET', uploadPath(atomId, uploadId), undefined, signal);
}

/** listUploads returns {uploads, nextCursor}; nextCursor is absent on the last page. */
export function listUploads(api, atomId, { limit = 20, cursor = '' } = {}, signal) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set('cursor', cursor);
  return apiRequest(api, 'GET', `${uploadsPath(atomId)}?${q}`, undefined, signal);
}

export function cancelUpload(api, atomId, uploadId, signal) {
  return apiRequest(api, 'DELETE', uploadPath(atomId, uploadId), undefined, signal);
}

export function retryUpload(api, atomId, uploadId, signal) {
  return apiRequest(api, 'POST', `${uploadPath(atomId, uploadId)}/retry`, undefined, signal);
}

// ---- starting, resuming, following ---------------------------------------

function withoutCredentials(rec) {
  const { credentials, ...rest } = rec; // eslint-disable-line no-unused-vars
  return rest;
}

function contentTypeOf(file) {
  return /^video\//.test(file.type) ? file.type : 'application/octet-stream';
}

/**
 * startUpload starts an upload of file to the destinations, sends its parts
 * and follows it. It resolves with the final record (or, with follow: false,
 * the record once every part is in S3) and rejects with an UploadError (or
 * an AbortError when options.signal is aborted).
 */
export async function startUpload(api, atomId, file, destinations, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const rec = await apiRequest(api, 'POST', uploadsPath(atomId), {
    filename: file.name,
    size: file.size,
    contentType: contentTypeOf(file),
    destinations,
  }, o.signal);
  const first = rec.credentials;
  const upload = withoutCredentials(rec);
  emit(o, { type: 'started', upload });
  await sendParts(api, upload, file, first, o);
  return afterParts(api, upload, o);
}

/**
 * resumeUpload sends the parts of an earlier upload that the service does not
 * have yet, from the same file, and follows it like startUpload.
 */
export async function resumeUpload(api, atomId, uploadId, file, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const upload = await getUpload(api, atomId, uploadId, o.signal);
  if (file.size !== upload.size) {
    throw new UploadError(`That is not the file this upload was started with: it has ${file.size} bytes, ` +
      `and ${upload.filename} has ${upload.size}.`);
  }
  if (upload.status !== 'uploading') {
    emit(o, { type: 'status', upload });
    return o.follow ? followUpload(api, atomId, uploadId, o) : upload;
  }
  const missing = upload.parts.flatMap((p, i) => (p.complete ? [] : [i]));
  emit(o, { type: 'resumed', upload, missing });
  await sendParts(api, upload, file, null, o);
  return afterParts(api, upload, o);
}

async function afterParts(api, upload, o) {
  emit(o, { type: 'sent', upload });
  return o.follow ? followUpload(api, upload.atomId, upload.id, o) : upload;
}

/** followUpload polls the record until the upload is complete, failed, cancelled or expired. */
export async function followUpload(api, atomId, uploadId, options = {}) {
  const o = { ...DEFAULTS, ...options };
  for (let errors = 0; ;) {
    let rec;
    try {
      rec = await getUpload(api, atomId, uploadId, o.signal);
      errors = 0;
    } catch (err) {
      // A service restart or a blip does not end the following.
      if (isAbort(err) || !err.retryable || ++errors > 30) throw err;
    }
    if (rec) {
      emit(o, { type: 'status', upload: rec });
      if (TERMINAL.has(rec.status)) return rec;
    }
    await sleep(o.pollMs, o.signal);
  }
}

function emit(o, ev) {
  if (o.onProgress) {
    try {
      o.onProgress(ev);
    } catch (err) {
      console.error('onProgress threw', err); // never stops the upload
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortError(signal));
    const t = setTimeout(done, ms);
    function done() {
      if (signal) signal.removeEventListener('abort', stop);
      resolve();
    }
    function stop() {
      clearTimeout(t);
      reject(abortError(signal));
    }
    if (signal) signal.addEventListener('abort', stop, { once: true });
  });
}

// ---- credentials -----------------------------------------------------------

// Credentials keeps the upload's temporary credentials and refreshes them
// before they expire: at each part, when less than refreshBeforeMs (or half
// their life, for short-lived ones) is left. One refresh at a time; the
// secrets live only in this object, never in storage or events.
class Credentials {
  constructor(api, upload, first, o) {
    this.api = api;
    this.upload = upload;
    this.o = o;
    this.current = first ? this.wrap(first, false) : null;
    this.pending = null;
  }

  wrap(c, refreshed) {
    const now = serverNow();
    const expiresAt = c.expiry * 1000; // by the server's clock
    const life = Math.max(0, expiresAt - now);
    emit(this.o, { type: 'credentials', expiry: c.expiry, refreshed });
    return {
      accessKeyId: c.temporaryAccessId,
      secretAccessKey: c.temporarySecretKey,
      sessionToken: c.sessionToken,
      expiresAt,
      refreshAt: expiresAt - Math.min(this.o.refreshBeforeMs, life / 2),
      fresh: true, // not yet checked by get: used at least once, whatever its expiry
    };
  }

  async get() {
    const c = this.current;
    if (c && (c.fresh || serverNow() < c.refreshAt)) {
      c.fresh = false;
      return c;
    }
    return this.refresh();
  }

  refresh() {
    if (!this.pending) {
      const { atomId, id } = this.upload;
      this.pending = apiRequest(this.api, 'POST', `${uploadPath(atomId, id)}/credentials`, undefined, this.o.signal)
        .then((body) => {
          this.current = this.wrap(body.credentials, true);
          return this.current;
        })
        .finally(() => {
          this.pending = null;
        });
    }
    return this.pending;
  }

  // S3 refused c: the next get refreshes.
  invalidate(c) {
    if (this.current === c) this.current = null;
  }
}

// ---- parts -----------------------------------------------------------------

/** partURL is where a part goes: path style for MinIO, virtual-hosted for AWS. */
export function partURL(s3, upload, key) {
  const path = key.split('/').map(enc).join('/');
  if (s3 && s3.endpoint) {
    const base = s3.endpoint.replace(/\/+$/, '');
    if (s3.pathStyle) return `${base}/${enc(upload.bucket)}/${path}`;
    const u = new URL(base);
    u.hostname = `${upload.bucket}.${u.hostname}`;
    return `${u.origin}/${path}`;
  }
  if (upload.bucket.includes('.')) {
    return `https://s3.${upload.region}.amazonaws.com/${enc(upload.bucket)}/${path}`;
  }
  return `https://${upload.bucket}.s3.${upload.region}.amazonaws.com/${path}`;
}

async function sha256Base64(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  let s = '';
  for (const b of new Uint8Array(digest)) s += String.fromCharCode(b);
  return btoa(s);
}

// sendParts PUTs the parts that are not complete, o.parallel at a time. The
// first part that fails for good stops the others.
async function sendParts(api, upload, file, firstCredentials, o) {
  if (!globalThis.crypto || !crypto.subtle) {
    throw new UploadError('This page must be opened over https (or on localhost) to sign uploads: the browser keeps its cryptography to secure pages.');
  }
  const creds = new Credentials(api, upload, firstCredentials, o);
  const todo = upload.parts.flatMap((p, i) => (p.complete ? [] : [i]));
  const sizeOf = (n) => upload.parts[n].end - upload.parts[n].start;
  let doneBytes = 0;
  let partsDone = 0;
  const pending = new Set(todo);
  upload.parts.forEach((p, i) => {
    if (!pending.has(i)) {
      doneBytes += sizeOf(i);
      partsDone++;
    }
  });
  const inFlight = new Map(); // part → bytes sent so far
  const counts = () => {
    let b = doneBytes;
    for (const v of inFlight.values()) b += v;
    return { bytesDone: b, size: upload.size, partsDone, partsTotal: upload.parts.length };
  };
  if (todo.length === 0) return;
  // Credentials from an earlier page or tab are not known: get fresh ones
  // before the first part, so a failure says so at once.
  if (!firstCredentials) await creds.refresh();

  const stop = new AbortController();
  const onAbort = () => stop.abort(abortError(o.signal));
  if (o.signal) {
    if (o.signal.aborted) throw abortError(o.signal);
    o.signal.addEventListener('abort', onAbort, { once: true });
  }
  let warnedETag = false;
  let next = 0;
  let failure = null;

  const putPart = async (n) => {
    const part = upload.parts[n];
    const body = file.slice(part.start, part.end);
    const url = partURL(api.s3, upload, part.key);
    for (let attempt = 1; ; attempt++) {
      let c = null;
      try {
        c = await creds.get();
        if (stop.signal.aborted) throw abortError(stop.signal);
        inFlight.set(n, 0);
        const headers = {};
        if (o.checksum) headers['x-amz-checksum-sha256'] = await sha256Base64(body);
        const signer = new AwsV4Signer({
          method: 'PUT',
          url,
          headers,
          accessKeyId: c.accessKeyId,
          secretAccessKey: c.secretAccessKey,
          sessionToken: c.sessionToken,
          service: 's3',
          region: upload.region,
          datetime: new Date(serverNow()).toISOString().replace(/[:-]|\.\d{3}/g, ''),
        });
        const signed = await signer.sign();
        const etag = await xhrPut(signed.url.toString(), signed.headers, body, (sent) => {
          inFlight.set(n, Math.min(sent, body.size));
          emit(o, { type: 'bytes', ...counts() });
        }, stop.signal, n);
        inFlight.delete(n);
        doneBytes += body.size;
        partsDone++;
        if (!etag && !warnedETag) {
          warnedETag = true;
          emit(o, { type: 'warning', message: "S3 took the part but the browser could not read its ETag: the bucket's CORS rule should expose the ETag header." });
        }
        emit(o, { type: 'part', part: n, etag: etag || '', ...counts() });
        return;
      } catch (err) {
        inFlight.delete(n);
        if (isAbort(err) || stop.signal.aborted) throw isAbort(err) ? err : abortError(stop.signal);
        if (err.status === 403 || ['ExpiredToken', 'InvalidAccessKeyId', 'InvalidToken', 'TokenRefreshRequired'].includes(err.code)) {
          if (c) creds.invalidate(c); // expired or refused: fresh ones for the next try
        }
        if (attempt >= o.attempts || err.retryable === false) throw err;
        const waitMs = Math.min(o.maxBackoffMs, o.backoffMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        emit(o, { type: 'retry', part: n, attempt, waitMs, error: err.message });
        await sleep(waitMs, stop.signal);
      }
    }
  };

  const worker = async () => {
    while (next < todo.length && !failure) {
      const n = todo[next++];
      try {
        await putPart(n);
      } catch (err) {
        if (!failure) {
          failure = err;
          stop.abort(err);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(Math.max(1, o.parallel), todo.length) }, worker));
  } finally {
    if (o.signal) o.signal.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure;
}

// xhrPut sends one part. XMLHttpRequest, not fetch: only it reports the
// bytes of a request body as they go (upload.onprogress).
function xhrPut(url, headers, body, onSent, signal, n) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of headers) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onSent(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.getResponseHeader('ETag'));
        return;
      }
      reject(s3Error(xhr, n));
    };
    xhr.onerror = () => reject(new UploadError(
      `Part ${n + 1} got no answer from S3: the network failed, or the bucket's CORS rule does not allow this page's origin (${location.origin}).`,
      { retryable: true },
    ));
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => reject(abortError(signal));
    if (signal.aborted) {
      reject(abortError(signal));
      return;
    }
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

function s3Error(xhr, n) {
  let code = '';
  let msg = '';
  try {
    const doc = new DOMParser().parseFromString(xhr.responseText || '', 'application/xml');
    code = (doc.querySelector('Code') || {}).textContent || '';
    msg = (doc.querySelector('Message') || {}).textContent || '';
  } catch {
    // not XML: the status says enough
  }
  const why = {
    AccessDenied: 'the upload\u2019s credentials may not write there',
    ExpiredToken: 'the credentials had expired',
    RequestTimeTooSkewed: 'this computer\u2019s clock is wrong',
    SignatureDoesNotMatch: 'the request signature was not accepted',
  }[code];
  const text = `S3 refused part ${n + 1} (${xhr.status}${code ? ` ${code}` : ''})${why ? `: ${why}` : msg ? `: ${msg}` : ''}.`;
  return new UploadError(text, { status: xhr.status, code, retryable: true });
}
