// The uploads page: pick an atom, see its uploads and their destinations'
// progress, start an upload from a file, cancel, retry, and resume an
// upload after a reload. It polls the API; the sending is uploader.js.
import {
  startUpload, resumeUpload, listUploads, cancelUpload, retryUpload, isAbort,
} from './uploader.js';

const $ = (sel) => document.querySelector(sel);
const KEY = { token: 'atomUploads.token', atom: 'atomUploads.atom', sending: 'atomUploads.sending' };
const POLL_MS = 2000;
const PAGE = 20;
const BASE = new URL('.', document.baseURI).href.replace(/\/$/, '');

const state = {
  config: { s3: { endpoint: '', pathStyle: false }, destinations: { youtube: true, s3Bucket: true } },
  token: sessionStorage.getItem(KEY.token) || '',
  atomId: '',
  records: new Map(), // upload id → record, of the atom shown
  local: new Map(), // upload id → what this tab is sending: {controller, bytesDone, note, error}
  sendErrors: new Map(), // upload id → why this tab stopped sending it (shown while it is uploading)
  cards: new Map(), // upload id → card element
  nextCursor: '',
  olderLoaded: false,
  pollTimer: 0,
  polling: false,
};

const api = () => ({ baseUrl: BASE, token: state.token, s3: state.config.s3 });

// ---- formatting ------------------------------------------------------------

function bytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

const pct = (v) => `${Math.round(v * 10) / 10}%`;

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

const UPLOAD_STATUS = {
  uploading: 'Uploading', processing: 'Processing', complete: 'Complete',
  failed: 'Failed', cancelled: 'Cancelled', expired: 'Expired (abandoned)',
};
const DEST_STATUS = {
  youtube: {
    waiting: 'Waiting for the first part', upload: 'Sending to YouTube', transcoding: 'YouTube is processing',
    complete: 'On YouTube', failed: 'Failed', cancelled: 'Cancelled',
  },
  s3Bucket: {
    waiting: 'Waiting for the whole file', transcoding: 'Transcoding', complete: 'Transcoded',
    failed: 'Failed', cancelled: 'Cancelled',
  },
};
const DEST_NAME = { youtube: 'YouTube', s3Bucket: 'Self-hosted' };
const WAITING_FOR = {
  youtubeQuota: 'YouTube’s daily quota is used up',
  youtubeUploadLimit: 'YouTube’s upload limit for the channel is reached',
  youtubeCredentials: 'the YouTube account needs to be connected again',
};

// ---- small DOM helper --------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function notice(text, bad = false) {
  const n = $('#notice');
  n.classList.toggle('bad', bad);
  n.textContent = text;
}

// ---- the sending list (survives a reload, in this tab only) -----------------

function sendingList() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY.sending) || '[]');
  } catch {
    return [];
  }
}

function markSending(rec) {
  const list = sendingList().filter((s) => s.uploadId !== rec.id);
  list.push({ atomId: rec.atomId, uploadId: rec.id, filename: rec.filename, size: rec.size });
  sessionStorage.setItem(KEY.sending, JSON.stringify(list));
}

function unmarkSending(id) {
  sessionStorage.setItem(KEY.sending, JSON.stringify(sendingList().filter((s) => s.uploadId !== id)));
}

// ---- cards ---------------------------------------------------------------------

function bar(id, key, labelText) {
  const pid = `${key}-${id}`;
  return [
    h('label', { for: pid, 'data-row': key }, labelText),
    h('progress', { id: pid, max: '100', value: '0', 'data-bar': key }),
    h('span', { class: 'num', 'data-num': key }),
  ];
}

function newCard(rec) {
  const id = rec.id;
  const card = h('article', { class: 'upload', 'data-upload-id': id, 'aria-labelledby': `title-${id}` },
    h('header', {},
      h('h3', { id: `title-${id}` }, rec.filename),
      h('span', { class: 'badge', 'data-status': '' }),
      h('span', { class: 'muted' }, `${bytes(rec.size)} · started ${when(rec.createdAt)} · `, h('code', {}, id))),
    h('p', { class: 'msg error-text', 'data-error': '', role: 'alert' }),
    h('p', { class: 'msg muted', 'data-note': '' }),
    h('div', { class: 'bars', 'data-bars': '' }),
    h('div', { class: 'dests', 'data-dests': '' }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger', 'data-action': 'cancel', hidden: true, onclick: () => onCancel(card.dataset.atomId, id) },
        'Cancel upload'),
      h('button', { type: 'button', class: 'secondary', 'data-action': 'retry', hidden: true, onclick: () => onRetry(card.dataset.atomId, id) },
        'Retry failed destinations'),
      h('span', { class: 'resume', 'data-resume': '', hidden: true },
        h('label', { for: `resume-${id}` }, `Resume: choose “${rec.filename}” again`),
        h('input', { type: 'file', id: `resume-${id}`, 'data-action': 'resume', onchange: (e) => onResume(card.dataset.atomId, id, e.target) }))),
    h('p', { class: 'msg', 'data-action-msg': '', role: 'status' }));
  card.dataset.atomId = rec.atomId;
  const bars = card.querySelector('[data-bars]');
  bars.append(...bar(id, 's3', 'To S3'));
  for (const d of rec.destinations) {
    if (d.type === 'youtube') {
      bars.append(...bar(id, 'youtubeBytes', 'To YouTube'), ...bar(id, 'youtubeProcessing', 'YouTube processing'));
    } else if (d.type === 's3Bucket') {
      bars.append(...bar(id, 'transcode', 'Transcode'));
    }
  }
  return card;
}

function setBar(card, key, value, text) {
  const p = card.querySelector(`progress[data-bar="${key}"]`);
  if (!p) return;
  const v = String(Math.max(0, Math.min(100, Math.round(value * 10) / 10)));
  if (p.getAttribute('value') !== v) p.setAttribute('value', v);
  setText(card.querySelector(`[data-num="${key}"]`), text);
}

function destBlock(d, rec) {
  // A cancelled upload stops its destinations: that is no failure to show.
  const stopped = rec.status === 'cancelled' && d.status !== 'complete';
  const status = stopped ? 'cancelled' : d.status;
  const words = (DEST_STATUS[d.type] || {})[status] || status;
  const det = d.details || {};
  const block = h('div', { 'data-dest': d.type },
    h('h4', {}, `${DEST_NAME[d.type] || d.type}: `, h('span', { class: `s-${status}`, 'data-dest-status': d.type }, words)));
  if (d.error && !stopped) block.append(h('p', { class: 'error-text' }, d.error));
  if (det.waitingFor) {
    const why = WAITING_FOR[det.waitingFor] || det.waitingFor;
    const at = det.resumeAt ? `; it goes on at ${when(det.resumeAt)}` : '';
    block.append(h('p', { class: 'muted' }, `Paused: ${why}${at}.`));
  }
  if (d.type === 'youtube' && det.url) {
    block.append(h('p', {}, h('a', { href: det.url, target: '_blank', rel: 'noopener noreferrer', 'data-youtube-link': '' }, `Watch on YouTube (${det.videoId})`)));
  }
  if (d.type === 's3Bucket') {
    const keys = (det.outputs || []).map((o) => (typeof o === 'string' ? o : o.key || JSON.stringify(o)));
    if (keys.length) {
      // The keys share the upload's folder: name it once, then each file.
      const dir = keys[0].slice(0, keys[0].lastIndexOf('/') + 1);
      const same = keys.every((k) => k.startsWith(dir));
      block.append(h('p', {}, 'Outputs in the output bucket', same && dir ? [' under ', h('code', {}, dir)] : '', ':'),
        h('ul', { 'data-outputs': '' }, keys.map((k) => h('li', {}, h('code', { title: k }, same ? k.slice(dir.length) : k)))));
    } else if (d.status === 'complete' && rec.status === 'complete') {
      block.append(h('p', { class: 'muted' }, 'No outputs were reported.'));
    }
  }
  return block;
}

function updateCard(card, rec) {
  const local = state.local.get(rec.id);
  const badge = card.querySelector('[data-status]');
  badge.className = `badge s-${rec.status}`;
  setText(badge, UPLOAD_STATUS[rec.status] || rec.status);
  badge.dataset.status = rec.status;
  const sendError = rec.status === 'uploading' ? state.sendErrors.get(rec.id) : '';
  setText(card.querySelector('[data-error]'), (local && local.error) || sendError || rec.error || '');
  setText(card.querySelector('[data-note]'), (local && local.note) || '');

  // Bytes to S3: this tab's own count while it sends, the record's otherwise.
  const size = rec.size || 1;
  let s3Bytes = 0;
  for (const p of rec.parts || []) if (p.complete) s3Bytes += p.end - p.start;
  if (local && local.bytesDone > s3Bytes) s3Bytes = local.bytesDone;
  if (rec.status !== 'uploading' && rec.status !== 'cancelled' && rec.status !== 'expired' && rec.status !== 'failed') s3Bytes = rec.size;
  const partsDone = (rec.parts || []).filter((p) => p.complete).length;
  setBar(card, 's3', (100 * s3Bytes) / size, `${bytes(s3Bytes)} of ${bytes(rec.size)} · ${partsDone}/${(rec.parts || []).length} parts recorded`);

  for (const d of rec.destinations) {
    const det = d.details || {};
    if (d.type === 'youtube') {
      const sent = det.uploadedBytes || 0;
      const done = ['transcoding', 'complete'].includes(d.status);
      const yb = done ? rec.size : sent;
      setBar(card, 'youtubeBytes', (100 * yb) / size, `${bytes(yb)} of ${bytes(rec.size)}`);
      const proc = d.status === 'complete' ? 100 : d.status === 'transcoding' ? d.progress : 0;
      setBar(card, 'youtubeProcessing', proc, d.status === 'complete' ? 'done'
        : d.status === 'transcoding' ? `${pct(proc)}${det.processingStatus ? ` · ${det.processingStatus}` : ''}` : 'not started');
    } else if (d.type === 's3Bucket') {
      const v = d.status === 'complete' ? 100 : d.progress;
      setBar(card, 'transcode', v, d.status === 'complete' ? 'done' : d.status === 'transcoding' ? pct(v) : 'not started');
    }
  }
  const dests = card.querySelector('[data-dests]');
  const key = JSON.stringify([rec.status, rec.destinations.map((d) => [d.status, d.error, d.details])]);
  if (dests.dataset.key !== key) {
    dests.dataset.key = key;
    dests.replaceChildren(...rec.destinations.map((d) => destBlock(d, rec)));
  }

  const live = rec.status === 'uploading' || rec.status === 'processing';
  card.querySelector('[data-action="cancel"]').hidden = !live;
  const failed = rec.status === 'failed' || rec.destinations.some((d) => d.status === 'failed');
  card.querySelector('[data-action="retry"]').hidden = !failed || rec.status === 'cancelled';
  card.querySelector('[data-resume]').hidden = !(rec.status === 'uploading' && !local);
}

function render() {
  const list = $('#uploads');
  const recs = [...state.records.values()].sort((a, b) => (b.createdAt + b.id).localeCompare(a.createdAt + a.id));
  const wanted = [];
  for (const rec of recs) {
    let card = state.cards.get(rec.id);
    if (!card) {
      card = newCard(rec);
      state.cards.set(rec.id, card);
    }
    updateCard(card, rec);
    wanted.push(card);
  }
  // Move only what is out of place, so focus and file pickers survive.
  wanted.forEach((card, i) => {
    if (list.children[i] !== card) list.insertBefore(card, list.children[i] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  $('#more').hidden = !state.nextCursor;
  if (state.token && state.atomId) {
    setText($('#list-state'), recs.length ? '' : 'No uploads for this atom yet.');
  }
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

// ---- polling ---------------------------------------------------------------------

async function poll() {
  if (!state.token || !state.atomId || state.polling) return;
  state.polling = true;
  const atomId = state.atomId;
  try {
    const page = await listUploads(api(), atomId, { limit: PAGE });
    if (atomId !== state.atomId) return;
    for (const rec of page.uploads || []) state.records.set(rec.id, rec);
    if (!state.olderLoaded) state.nextCursor = page.nextCursor || '';
    if ($('#notice').classList.contains('bad') && $('#notice').dataset.from === 'poll') notice('');
    render();
  } catch (err) {
    notice(err.message, true);
    $('#notice').dataset.from = 'poll';
    if (err.status === 401) stopPolling();
  } finally {
    state.polling = false;
  }
}

function startPolling() {
  stopPolling();
  poll();
  state.pollTimer = setInterval(() => {
    if (!document.hidden || state.local.size) poll();
  }, POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = 0;
}

async function loadOlder() {
  if (!state.nextCursor) return;
  try {
    const page = await listUploads(api(), state.atomId, { limit: PAGE, cursor: state.nextCursor });
    for (const rec of page.uploads || []) state.records.set(rec.id, rec);
    state.nextCursor = page.nextCursor || '';
    state.olderLoaded = true;
    render();
  } catch (err) {
    notice(err.message, true);
  }
}

// ---- sending ----------------------------------------------------------------------

function progressHandler(atomId, local) {
  return (ev) => {
    switch (ev.type) {
      case 'started':
      case 'resumed':
        notice('');
        local.id = ev.upload.id;
        state.sendErrors.delete(ev.upload.id);
        state.local.set(ev.upload.id, local);
        markSending(ev.upload);
        if (atomId === state.atomId) state.records.set(ev.upload.id, ev.upload);
        local.note = ev.type === 'resumed'
          ? `Resuming: ${ev.missing.length} of ${ev.upload.parts.length} parts still to send.`
          : `Sending ${ev.upload.parts.length} parts to S3…`;
        break;
      case 'bytes':
      case 'part':
        local.bytesDone = ev.bytesDone;
        local.note = `Sending to S3: ${bytes(ev.bytesDone)} of ${bytes(ev.size)} (${pct((100 * ev.bytesDone) / (ev.size || 1))}), ${ev.partsDone} of ${ev.partsTotal} parts in.`;
        break;
      case 'retry':
        local.note = `Part ${ev.part + 1} failed (${ev.error}); trying again in ${Math.ceil(ev.waitMs / 1000)} s.`;
        break;
      case 'sent':
        local.bytesDone = ev.upload.size;
        local.note = 'Every part is in S3; following the destinations.';
        unmarkSending(ev.upload.id);
        break;
      case 'status':
        if (atomId === state.atomId) state.records.set(ev.upload.id, ev.upload);
        local.note = '';
        break;
      case 'warning':
        local.warning = ev.message;
        notice(ev.message, true);
        break;
      default:
    }
    scheduleRender();
  };
}

async function send(atomId, run) {
  const local = { controller: new AbortController(), bytesDone: 0, note: '', error: '', id: '' };
  try {
    const rec = await run(progressHandler(atomId, local), local.controller.signal);
    const name = rec.filename;
    if (rec.status === 'complete') notice(`${name}: upload complete.`);
    else if (rec.status === 'failed') notice(`${name}: upload failed. ${rec.error || ''}`, true);
  } catch (err) {
    if (isAbort(err)) return;
    local.error = err.message;
    if (!local.id) notice(err.message, true); // it did not start: no card to show it on
  } finally {
    if (local.id) {
      state.local.delete(local.id);
      if (local.error) {
        // On the card, with the resume control, while the upload waits for parts.
        state.sendErrors.set(local.id, `Sending stopped: ${local.error} Choose the file under “Resume” to try again.`);
      } else {
        unmarkSending(local.id);
      }
    }
    poll();
  }
}

function onStart(e) {
  e.preventDefault();
  if (!state.token || !state.atomId) {
    notice('Enter the API token and an atom id first.', true);
    return;
  }
  const file = $('#file').files[0];
  if (!file) {
    notice('Choose a video file.', true);
    $('#file').focus();
    return;
  }
  const destinations = [];
  if ($('#dest-youtube').checked && state.config.destinations.youtube) {
    const tags = $('#yt-tags').value.split(',').map((t) => t.trim()).filter(Boolean);
    const d = {
      type: 'youtube',
      title: $('#yt-title').value.trim() || file.name.replace(/\.[^.]+$/, ''),
      privacyStatus: $('#yt-privacy').value,
    };
    const desc = $('#yt-description').value.trim();
    if (desc) d.description = desc;
    if (tags.length) d.tags = tags;
    destinations.push(d);
  }
  if ($('#dest-s3').checked && state.config.destinations.s3Bucket) destinations.push({ type: 's3Bucket' });
  if (!destinations.length) {
    notice('Choose at least one destination.', true);
    return;
  }
  notice(`Starting the upload of ${file.name}…`);
  const atomId = state.atomId;
  send(atomId, (onProgress, signal) => startUpload(api(), atomId, file, destinations, { onProgress, signal }));
  $('#upload-form').reset();
  applyConfig();
}

function onResume(atomId, id, input) {
  const file = input.files[0];
  input.value = '';
  if (!file || state.local.has(id)) return;
  notice(`Resuming the upload of ${file.name}…`);
  send(atomId, (onProgress, signal) => resumeUpload(api(), atomId, id, file, { onProgress, signal }));
}

async function onCancel(atomId, id) {
  const card = state.cards.get(id);
  const msg = card.querySelector('[data-action-msg]');
  const local = state.local.get(id);
  try {
    const rec = await cancelUpload(api(), atomId, id);
    if (local) local.controller.abort();
    state.local.delete(id);
    unmarkSending(id);
    state.records.set(id, rec);
    msg.textContent = 'Cancelled.';
  } catch (err) {
    msg.textContent = `Could not cancel: ${err.message}`;
  }
  render();
}

async function onRetry(atomId, id) {
  const card = state.cards.get(id);
  const msg = card.querySelector('[data-action-msg]');
  msg.textContent = 'Asking the service to retry…';
  try {
    const rec = await retryUpload(api(), atomId, id);
    if (rec && rec.id) state.records.set(id, rec);
    msg.textContent = 'Retrying the failed destinations.';
  } catch (err) {
    msg.textContent = err.status === 404 || err.status === 405
      ? 'This service cannot retry uploads yet.'
      : `Not retried: ${err.message}`;
  }
  render();
}

// ---- token and atom ----------------------------------------------------------------

function showToken() {
  setText($('#token-state'), state.token ? 'Token set for this tab.' : '');
  $('#token-forget').hidden = !state.token;
  $('#token').required = !state.token;
  $('#token').placeholder = state.token ? '••••••••' : '';
}

function selectAtom(id) {
  if (id === state.atomId) {
    poll();
    return;
  }
  state.atomId = id;
  state.records.clear();
  state.cards.clear();
  state.nextCursor = '';
  state.olderLoaded = false;
  $('#uploads').replaceChildren();
  sessionStorage.setItem(KEY.atom, id);
  history.replaceState(null, '', `#atom=${encodeURIComponent(id)}`);
  setText($('#uploads-atom'), `of ${id}`);
  setText($('#list-state'), state.token ? 'Loading…' : 'Enter the API token to see the uploads.');
  if (state.token) startPolling();
}

function applyConfig() {
  const { youtube, s3Bucket } = state.config.destinations;
  $('#dest-youtube-box').hidden = !youtube;
  $('#dest-s3-box').hidden = !s3Bucket;
  $('#dest-youtube').checked = youtube;
  $('#dest-s3').checked = s3Bucket;
}

async function init() {
  try {
    const res = await fetch('static/config.json', { cache: 'no-store' });
    if (res.ok) state.config = await res.json();
  } catch {
    // the defaults: AWS's S3, both destinations
  }
  applyConfig();
  showToken();
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('#token').value.trim();
    if (!t) return;
    state.token = t;
    sessionStorage.setItem(KEY.token, t);
    $('#token').value = '';
    showToken();
    notice('');
    if (state.atomId) startPolling();
    else $('#atom').focus();
  });
  $('#token-forget').addEventListener('click', () => {
    state.token = '';
    sessionStorage.removeItem(KEY.token);
    stopPolling();
    showToken();
    $('#token').focus();
  });
  $('#atom-form').addEventListener('submit', (e) => {
    e.preventDefault();
    selectAtom($('#atom').value.trim());
  });
  $('#upload-form').addEventListener('submit', onStart);
  $('#more').addEventListener('click', loadOlder);
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('atom');
  const atom = fromHash || sessionStorage.getItem(KEY.atom) || '';
  if (atom) {
    $('#atom').value = atom;
    selectAtom(atom);
  }
  const interrupted = sendingList();
  if (interrupted.length) {
    const names = interrupted.map((s) => `${s.filename} (atom ${s.atomId})`).join(', ');
    notice(`The page was reloaded while sending ${names}. Choose the same file under “Resume” to send the rest.`, true);
  }
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) poll();
  });
}

init();
