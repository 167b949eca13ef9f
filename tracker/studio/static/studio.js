// tracker studio: the page over the studio's HTTP API (tracker/studio/server.py). No build step, no CDN.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

const S = {
  video: null,          // {width, height, num_frames, fps}
  frame: 0,
  objects: new Map(),   // id -> {id, label, color: [r, g, b], prompts: Map(frame -> prompt)}
  selected: null,
  job: null,            // the last Track that finished: its masks overlay the frames
  running: null,        // the Track running now
  tracked: new Map(),   // frame -> {id: rle} of S.job (a bounded cache)
  drawn: 0,             // bumped on every frame change: late answers for another frame are dropped
  presence: null,       // {id: [[first, last], ...]} of S.job: the timeline's lanes
  hidden: new Set(),    // object ids not drawn
  picked: new Set(),    // object ids whose colour was chosen here (the page does not change it)
  alpha: 0.45,          // mask fill opacity (the outline is opaque)
  playing: false,
  played: 0,            // frames shown while playing
  undo: [],             // prompt edits, each {undo: async fn, redo: async fn, what}
  redo: [],
  zoom: { k: 1, x: 0, y: 0 },
  masks: new Map(),     // object id -> Uint8Array [H*W] of the mask drawn now (row-major)
};

// ---- HTTP ------------------------------------------------------------------------------------------
async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + TOKEN } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  const data = text && (r.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text;
  if (!r.ok) throw new Error((data && data.detail) || r.status + " " + r.statusText);
  return data;
}
const frameUrl = (i) => `/api/frames/${i}.jpg?token=${encodeURIComponent(TOKEN)}`;

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// ---- COCO RLE (compressed counts, column-major) --------------------------------------------------
function rleCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// Decodes a mask into a row-major Uint8Array [H*W] (1 inside).
// (``box``: [x0, y0, x1, y1] of the pixels set, x1/y1 exclusive; [0, 0, 0, 0] when empty)
function decodeRle(rle) {
  const [h, w] = rle.size;
  const out = new Uint8Array(h * w);
  const counts = rleCounts(rle.counts);
  let idx = 0, x0 = w, y0 = h, x1 = 0, y1 = 0;
  for (let r = 0; r < counts.length; r++) {
    const n = counts[r];
    if (r % 2 === 1 && n > 0) {
      for (let j = idx; j < idx + n; j++) {
        const x = Math.floor(j / h), y = j - x * h;
        out[y * w + x] = 1;
      }
      // a run is column-major: it spans columns idx/h .. (idx+n-1)/h, and whole columns between
      const ca = Math.floor(idx / h), cb = Math.floor((idx + n - 1) / h);
      x0 = Math.min(x0, ca); x1 = Math.max(x1, cb + 1);
      if (ca === cb) { y0 = Math.min(y0, idx - ca * h); y1 = Math.max(y1, idx + n - 1 - cb * h + 1); }
      else { y0 = 0; y1 = h; }
    }
    idx += n;
  }
  out.box = x1 > x0 ? [x0, y0, x1, y1] : [0, 0, 0, 0];
  return out;
}

// ---- drawing ------------------------------------------------------------------------------------
function masksOn(frame) {
  // Per object: its prompt's preview on this frame, else the last Track's mask.
  const out = [];
  const tracked = S.tracked.get(frame);
  for (const o of S.objects.values()) {
    const p = o.prompts.get(frame);
    if (p && p.mask) out.push([o, p.mask]);
    else if (!p && tracked && tracked[o.id]) out.push([o, tracked[o.id]]);
  }
  return out;
}

function visible(o) {
  if ($("only").checked) return o.id === S.selected;
  return !S.hidden.has(o.id);
}

// Colours that read well on video and on the page: distinct hues, none dark (a near-black fill and lane
// vanish on the dark page) and no white (the timeline's prompt marks are white).
const PALETTE = [[255, 56, 56], [255, 157, 28], [255, 230, 0], [72, 219, 72], [0, 214, 200], [40, 160, 255],
  [150, 130, 255], [230, 80, 255], [255, 110, 180], [160, 255, 60], [255, 200, 150], [150, 230, 255]];
const dist2 = (a, b) => (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2;

// WCAG contrast: an object's colour stays at least 3:1 against the page and the timeline lanes.
const PAGE = [[0x1d, 0x1f, 0x21], [0x26, 0x29, 0x2c]];
const MIN_CONTRAST = 3;
const luminance = (c) => {
  const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const contrast = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
// The colour, mixed with white until it stands out on the page (the server's blues are too dark there).
function legible(c) {
  let out = c.slice();
  for (let k = 1; k <= 20 && Math.min(...PAGE.map((p) => contrast(out, p))) < MIN_CONTRAST; k++) {
    out = c.map((v) => Math.round(v + (255 - v) * k / 20));
  }
  return out;
}

// The frame's pixels (for the colour under a mask), read once per frame shown.
let framePixels = null;
function readFrame() {
  const img = $("frame");
  if (!img.naturalWidth) return null;
  const c = document.createElement("canvas");
  c.width = S.video.width; c.height = S.video.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0, c.width, c.height);
  return ctx.getImageData(0, 0, c.width, c.height).data;
}

// An object's colour is chosen once, when its first mask is drawn: the palette colour farthest from the
// colour under the mask and from the other objects' colours (unless the user picked one); later clicks
// never change it.
function chooseColour(o, mask) {
  if (o.colourChosen || S.picked.has(o.id) || mask.box[2] === 0) return;  // (an empty mask says nothing)
  o.colourChosen = true;
  if (!framePixels) framePixels = readFrame();
  if (!framePixels) return;
  let n = 0; const mean = [0, 0, 0];
  for (let i = 0; i < mask.length; i += 7) {
    if (!mask[i]) continue;
    mean[0] += framePixels[4 * i]; mean[1] += framePixels[4 * i + 1]; mean[2] += framePixels[4 * i + 2]; n++;
  }
  if (!n) { o.colourChosen = false; return; }
  for (let k = 0; k < 3; k++) mean[k] /= n;
  const others = [...S.objects.values()].filter((q) => q !== o && q.colourChosen).map((q) => q.color);
  let best = o.color, score = -1;
  for (const c of PALETTE) {
    const s = Math.min(dist2(c, mean) * 1.5, ...others.map((q) => dist2(c, q)), Infinity);
    if (s > score) { score = s; best = c; }
  }
  o.color = best.slice();
  renderObjects();
}

let overlayImage = null;  // reused: a 720p frame's RGBA is 3.7 MB
function drawOverlay() {
  const { width: w, height: h } = S.video;
  const ctx = $("overlay").getContext("2d");
  if (!overlayImage) overlayImage = ctx.createImageData(w, h);
  const img = overlayImage;
  const d = img.data;
  d.fill(0);
  const fill = Math.round(255 * S.alpha);
  S.masks.clear();
  for (const [o, rle] of masksOn(S.frame)) {
    const m = decodeRle(rle);
    if (!visible(o)) continue;
    S.masks.set(o.id, m);
    chooseColour(o, m);
    const [r, g, b] = o.color;
    const [bx0, by0, bx1, by1] = m.box;
    for (let y = by0; y < by1; y++) {
      for (let x = bx0, i = y * w + bx0; x < bx1; x++, i++) {
        if (!m[i]) continue;
        // the outline: a mask pixel with a 4-neighbour outside it (or at the frame's edge)
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !m[i - 1] || !m[i + 1] || !m[i - w] || !m[i + w];
        const o4 = 4 * i;
        d[o4] = r; d[o4 + 1] = g; d[o4 + 2] = b; d[o4 + 3] = edge ? 255 : fill;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  drawMarks();
}

function drawMarks() {
  const c = $("marks"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const scale = S.video.width / c.getBoundingClientRect().width || 1;
  for (const o of S.objects.values()) {
    const p = o.prompts.get(S.frame);
    if (!p) continue;
    const strong = o.id === S.selected;
    ctx.lineWidth = (strong ? 2.5 : 1.5) * scale;
    ctx.strokeStyle = `rgb(${o.color.join(",")})`;
    if (p.box) {
      const [x0, y0, x1, y1] = p.box;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
    for (const [x, y, lab] of p.points) {
      ctx.beginPath();
      ctx.arc(x, y, 5 * scale, 0, 2 * Math.PI);
      ctx.fillStyle = lab ? "#3fb950" : "#f85149";
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }
}

// Frames decoded ahead (playback and stepping), bounded.
const ahead = new Map();
function prefetch(i) {
  if (i < 0 || i >= S.video.num_frames || ahead.has(i)) return;
  const im = new Image();
  im.src = frameUrl(i);
  ahead.set(i, im);
  while (ahead.size > 48) ahead.delete(ahead.keys().next().value);
  loadTracked(i);
}

async function showFrame(i) {
  i = Math.max(0, Math.min(S.video.num_frames - 1, i | 0));
  const moved = i !== S.frame;
  S.frame = i;
  const ticket = ++S.drawn;
  $("scrubber").value = i;
  if (document.activeElement !== $("frame-input")) $("frame-input").value = i;
  const part = S.video.video_frames;  // part of a video (source.start/stride): its own frame number too
  $("video-frame").textContent = part && (part.start || part.stride > 1) ? `video frame ${part.start + i * part.stride}` : "";
  if (moved && !$("status").classList.contains("error")) status("");  // the status line is about this frame
  moveCursor();
  const img = $("frame");
  const loaded = new Promise((ok) => { img.onload = ok; img.onerror = ok; });
  img.src = frameUrl(i);
  for (const j of [i + 1, i - 1]) prefetch(j);
  await Promise.all([loaded, loadPreviews(i), loadTracked(i)]);
  if (ticket === S.drawn) {
    framePixels = null;
    drawOverlay();
    document.body.dataset.shown = String(i);  // the frame and its overlay are on screen
  }
  return ticket === S.drawn;
}

// ---- playback: at the source's rate, dropping frames rather than drifting ---------------------
// The latest frame due by ``target`` that is already here (image and masks) and after the one shown
// (in playing order: past the last frame it loops to the first); -1: none yet.
function readyFrame(target) {
  const n = S.video.num_frames, at = S.frame;
  const order = (f) => (f - at + n) % n;  // 0 = the frame shown, 1 = the next one, ...
  let best = -1;
  for (const [f, im] of ahead) {
    const here = im.complete && im.naturalWidth > 0 && (S.job === null || S.tracked.has(f));
    if (here && order(f) > 0 && order(f) <= order(target) && (best < 0 || order(f) > order(best))) best = f;
  }
  return best;
}

function setPlaying(on) {
  if (on === S.playing) return;
  S.playing = on;
  $("play").innerHTML = on ? "&#10074;&#10074;" : "&#9654;";
  document.body.dataset.playing = on ? "1" : "0";
  if (!on) return;
  const fps = S.video.fps || 25, n = S.video.num_frames;
  const t0 = performance.now(), f0 = S.frame >= n - 1 ? 0 : S.frame;
  let busy = false, took = 1 / fps;  // seconds one frame takes to show (running mean)
  const tick = (now) => {
    if (!S.playing) return;
    // (a frame callback's time may be a little before t0: never a frame before the first)
    const target = (f0 + Math.floor((Math.max(0, now - t0) / 1000) * fps)) % n;  // loops at the end
    // Fetch ahead only the frames that will be due when a frame is shown: a page slower than the
    // source skips frames, and fetching those would only slow it more.
    const stride = Math.max(1, Math.round(took * fps));
    for (let k = 0; k <= 4; k++) prefetch((target + k * stride) % n);
    // Show the latest frame that is due and already here (image and masks): the page never asks the
    // server for a frame behind the ones it fetched ahead, so the video's decoder only steps forward.
    const show = readyFrame(target);
    if (!busy && show >= 0) {
      busy = true;
      const start = performance.now();
      showFrame(show).then((shown) => {
        busy = false;
        took = 0.8 * took + 0.2 * ((performance.now() - start) / 1000);
        if (shown) document.body.dataset.played = String(++S.played);
      });
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

async function loadPreviews(frame) {
  // Prompts read from a prompts file have no preview yet: the server makes it on request.
  const jobs = [];
  for (const o of S.objects.values()) {
    const p = o.prompts.get(frame);
    if (p && !p.mask) {
      jobs.push(api("GET", `/api/objects/${o.id}/prompts/${frame}`).then((r) => { p.mask = r.mask; p.score = r.score; })
        .catch((e) => status(e.message, true)));
    }
  }
  await Promise.all(jobs);
}

const loading = new Map();  // frame -> the request for its tracked masks
async function loadTracked(frame) {
  if (S.job === null || S.tracked.has(frame)) return;
  if (loading.has(frame)) return loading.get(frame);
  const job = S.job;
  const req = (async () => {
    try {
      const r = await api("GET", `/api/track/${job}/frames/${frame}`);
      if (job !== S.job) return;
      const byId = {};
      for (const o of r.objects) byId[o.id] = o.mask;
      S.tracked.set(frame, byId);
      if (S.tracked.size > 256) S.tracked.delete(S.tracked.keys().next().value);
    } catch (e) {
      status(e.message, true);
    } finally {
      loading.delete(frame);
    }
  })();
  loading.set(frame, req);
  return req;
}

// ---- objects ----------------------------------------------------------------------------------
function renderObjects() {
  const ul = $("objects");
  ul.innerHTML = "";
  $("first-hint").hidden = S.objects.size > 0;
  for (const o of S.objects.values()) {
    const li = document.createElement("li");
    li.dataset.id = o.id;
    li.className = (o.id === S.selected ? "selected " : "") + (S.hidden.has(o.id) ? "hidden" : "");
    const eye = document.createElement("span");
    eye.className = "eye";
    eye.dataset.testid = `eye-${o.id}`;
    eye.textContent = S.hidden.has(o.id) ? "◌" : "●";
    eye.title = "hide / show this object (H)";
    eye.onclick = (ev) => { ev.stopPropagation(); toggleHidden(o.id); };
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = "#" + o.id;
    const color = document.createElement("input");
    color.type = "color";
    color.value = "#" + o.color.map((v) => v.toString(16).padStart(2, "0")).join("");
    color.title = "overlay colour (this page only)";
    color.oninput = () => {
      o.color = [1, 3, 5].map((k) => parseInt(color.value.slice(k, k + 2), 16));
      S.picked.add(o.id);
      drawOverlay();
      renderTimeline();
    };
    const label = document.createElement("input");
    label.type = "text";
    label.placeholder = "label";
    label.value = o.label || "";
    label.onchange = () => {
      const before = o.label || null, after = label.value || null;
      setLabel(o.id, after).then(() => remember(`label of object ${o.id}`,
        () => setLabel(o.id, before), () => setLabel(o.id, after))).catch((e) => status(e.message, true));
    };
    const frames = document.createElement("span");
    frames.className = "frames";
    frames.textContent = o.prompts.size ? "f " + [...o.prompts.keys()].sort((a, b) => a - b).join(",") : "no prompt";
    const del = document.createElement("button");
    del.textContent = "✕";
    del.title = "delete this object";
    del.onclick = (ev) => {
      ev.stopPropagation();
      deleteObject(o.id).catch((e) => status(e.message, true));
    };
    li.onclick = () => { S.selected = o.id; renderObjects(); drawOverlay(); };
    li.append(eye, id, color, label, frames, del);
    ul.append(li);
  }
  renderTimeline();
}

function toggleHidden(id) {
  if (S.hidden.has(id)) S.hidden.delete(id); else S.hidden.add(id);
  renderObjects();
  drawOverlay();
}

async function setLabel(id, label) {
  const r = await api("PUT", `/api/objects/${id}`, { label });
  const o = S.objects.get(id);
  if (o) o.label = r.label;
  renderObjects();
}

async function addObject(id) {
  id = id || Math.max(0, ...S.objects.keys()) + 1;
  const r = await api("PUT", `/api/objects/${id}`, { label: null });
  S.objects.set(id, { id, label: r.label, color: legible(r.color), prompts: new Map() });
  S.selected = id;
  renderObjects();
  return S.objects.get(id);
}

// ---- undo / redo: every prompt edit is remembered with the calls that undo and redo it ------------
function remember(what, undo, redo) {
  S.undo.push({ what, undo, redo });
  if (S.undo.length > 200) S.undo.shift();
  S.redo = [];
  undoButtons();
}

function undoButtons() {
  $("undo").disabled = !S.undo.length;
  $("redo").disabled = !S.redo.length;
  $("undo").title = S.undo.length ? `undo ${S.undo[S.undo.length - 1].what} (Ctrl+Z)` : "nothing to undo";
  $("redo").title = S.redo.length ? `redo ${S.redo[S.redo.length - 1].what} (Ctrl+Shift+Z)` : "nothing to redo";
}

let replaying = Promise.resolve();
function step(back) {
  // One at a time, in order, however fast the keys come.
  replaying = replaying.then(async () => {
    const from = back ? S.undo : S.redo, to = back ? S.redo : S.undo;
    const e = from[from.length - 1];
    if (!e) return;
    try {
      await (back ? e.undo() : e.redo());
      from.pop();  // moved once done: the counts say what is on screen
      to.push(e);
      status(`${back ? "undid" : "redid"} ${e.what}`);
    } catch (err) {
      status(err.message, true);
    }
    undoButtons();
  });
  return replaying;
}

const copyPrompt = (p) => (p ? { points: p.points.map((q) => q.slice()), box: p.box ? p.box.slice() : null, based: !!p.based } : null);

// Sets an object's prompt on a frame to ``state`` ({points, box} or null: no prompt), with its preview.
async function applyPrompt(id, frame, state) {
  let o = S.objects.get(id);
  if (!o) o = await addObject(id);
  if (state === null) {
    if (o.prompts.has(frame)) {
      await api("DELETE", `/api/objects/${id}/prompts/${frame}`);
      o.prompts.delete(frame);
    }
  } else {
    const r = await api("PUT", `/api/objects/${id}/prompts/${frame}`, { points: state.points, box: state.box });
    o.prompts.set(frame, { points: state.points, box: state.box, mask: r.mask, score: r.score, based: state.based });
  }
  renderObjects();
  if (frame === S.frame) drawOverlay(); else await showFrame(frame);
}

async function editPrompt(o, frame, points, box) {
  const before = copyPrompt(o.prompts.get(frame));
  const t0 = performance.now();
  const r = await api("PUT", `/api/objects/${o.id}/prompts/${frame}`, { points, box });
  const based = !!(before && before.based);
  o.prompts.set(frame, { points, box, mask: r.mask, score: r.score, based });
  const after = { points: points.map((q) => q.slice()), box: box ? box.slice() : null, based };
  const id = o.id;
  status(`object ${o.id}, frame ${frame}: preview in ${Math.round(performance.now() - t0)} ms (score ${r.score})`);
  renderObjects();
  if (frame === S.frame) drawOverlay();
  remember(`the prompt of object ${id} on frame ${frame}`, () => applyPrompt(id, frame, before), () => applyPrompt(id, frame, after));
}

async function deleteObject(id, record = true) {
  const o = S.objects.get(id);
  if (!o) return;
  const saved = { label: o.label || null, prompts: [...o.prompts.entries()].map(([f, p]) => [f, copyPrompt(p)]) };
  await api("DELETE", `/api/objects/${id}`);
  S.objects.delete(id);
  if (S.selected === id) S.selected = null;
  renderObjects();
  drawOverlay();
  const restore = async () => {
    await addObject(id);
    if (saved.label) await setLabel(id, saved.label);
    for (const [f, p] of saved.prompts) if (p.points.length || p.box) await applyPrompt(id, f, p);
  };
  if (record) remember(`deleting object ${id}`, restore, () => deleteObject(id, false));
}

// ---- pointer: click = point, drag = box; Alt-drag or the middle button pans a zoomed frame ---------
function videoXY(ev) {
  const r = $("marks").getBoundingClientRect();
  const x = ((ev.clientX - r.left) / r.width) * S.video.width;
  const y = ((ev.clientY - r.top) / r.height) * S.video.height;
  return [Math.max(0, Math.min(S.video.width, x)), Math.max(0, Math.min(S.video.height, y))];
}

let press = null;
function onDown(ev) {
  ev.preventDefault();
  ev.target.setPointerCapture(ev.pointerId);  // a drag that ends outside the frame still ends here
  const pan = ev.altKey || ev.button === 1;
  press = { xy: videoXY(ev), client: [ev.clientX, ev.clientY], button: ev.button, shift: ev.shiftKey, pan, zoom: { ...S.zoom } };
}

function onMove(ev) {
  if (!press || !press.pan) return;
  S.zoom.x = press.zoom.x + (ev.clientX - press.client[0]);
  S.zoom.y = press.zoom.y + (ev.clientY - press.client[1]);
  applyZoom();
}

async function onUp(ev) {
  if (!press) return;
  const p = press;
  press = null;
  if (p.pan) return;
  setPlaying(false);
  const moved = Math.hypot(ev.clientX - p.client[0], ev.clientY - p.client[1]);
  try {
    const o = S.selected !== null && S.objects.has(S.selected) ? S.objects.get(S.selected) : await addObject();
    const old = o.prompts.get(S.frame) || { points: [], box: null };
    let points = old.points.map((q) => q.slice()), box = old.box;
    if (moved > 4 && p.button === 0) {
      const [x1, y1] = videoXY(ev);
      box = [Math.min(p.xy[0], x1), Math.min(p.xy[1], y1), Math.max(p.xy[0], x1), Math.max(p.xy[1], y1)];
    } else {
      const positive = p.button === 0 && !p.shift;
      points.push([p.xy[0], p.xy[1], positive ? 1 : 0]);
    }
    await editPrompt(o, S.frame, points, box);
  } catch (e) {
    status(e.message, true);
  }
}

// ---- zoom ---------------------------------------------------------------------------------------
function applyZoom() {
  const z = S.zoom, st = $("stage").getBoundingClientRect();
  z.k = Math.max(1, Math.min(8, z.k));
  // keep the frame covering the view
  z.x = Math.min(0, Math.max(st.width * (1 - z.k), z.x));
  z.y = Math.min(0, Math.max(st.height * (1 - z.k), z.y));
  $("zoom").style.transform = `translate(${z.x}px, ${z.y}px) scale(${z.k})`;
  drawMarks();
}

function zoomAt(factor, cx, cy) {
  const z = S.zoom, st = $("stage").getBoundingClientRect();
  const px = cx - st.left, py = cy - st.top;
  const k = Math.max(1, Math.min(8, z.k * factor));
  z.x = px - ((px - z.x) * k) / z.k;
  z.y = py - ((py - z.y) * k) / z.k;
  z.k = k;
  applyZoom();
}

// ---- timeline: a lane per object, prompt frames marked, presence from the last Track -------------
function renderTimeline() {
  const tl = $("timeline");
  if (!S.video) return;
  const n = S.video.num_frames;
  tl.innerHTML = "";
  for (const o of S.objects.values()) {
    const lane = document.createElement("div");
    lane.className = "lane" + (o.id === S.selected ? " selected" : "");
    lane.dataset.testid = `lane-${o.id}`;
    lane.dataset.id = o.id;
    lane.title = `object ${o.id}${o.label ? " (" + o.label + ")" : ""}: click to go to a frame`;
    for (const [first, last] of (S.presence && S.presence[o.id]) || []) {
      const seg = document.createElement("div");
      seg.className = "present";
      seg.dataset.first = first;
      seg.dataset.last = last;
      seg.style.left = `${(100 * first) / n}%`;
      seg.style.width = `${(100 * (last - first + 1)) / n}%`;
      seg.style.background = `rgb(${o.color.join(",")})`;
      lane.append(seg);
    }
    for (const f of o.prompts.keys()) {
      const mark = document.createElement("div");
      mark.className = "prompt-mark";
      mark.dataset.frame = f;
      mark.style.left = `${(100 * (f + 0.5)) / n}%`;
      lane.append(mark);
    }
    const cur = document.createElement("div");
    cur.className = "cursor";
    lane.append(cur);
    lane.onclick = (ev) => {
      const r = lane.getBoundingClientRect();
      S.selected = o.id;
      renderObjects();
      showFrame(Math.floor(((ev.clientX - r.left) / r.width) * n));
    };
    tl.append(lane);
  }
  moveCursor();
}

function moveCursor() {
  if (!S.video) return;
  for (const c of document.querySelectorAll("#timeline .cursor")) {
    c.style.left = `${(100 * (S.frame + 0.5)) / S.video.num_frames}%`;
  }
}

// ---- Track, exports and Save --------------------------------------------------------------------
async function track() {
  setPlaying(false);
  $("track").disabled = true;
  $("track-state").className = "";
  $("exports").innerHTML = "";
  try {
    const { job } = await api("POST", "/api/track");
    S.running = job;
    for (;;) {
      const st = await api("GET", `/api/track/${job}`);
      $("progress").value = st.num_frames ? st.frames_done / st.num_frames : 0;
      $("track-state").textContent = `Track ${job}: ${st.state}, ${st.frames_done} / ${st.num_frames} frames`;
      if (st.state === "done") {
        S.job = job;
        S.tracked.clear();
        S.presence = (await api("GET", `/api/track/${job}/presence`)).objects;
        $("track-state").textContent += ` → ${st.output_dir}`;
        await showExports(job);
        break;
      }
      if (st.state === "failed") {
        $("track-state").textContent = `Track ${job} failed: ${st.error}`;
        $("track-state").className = "error";
        break;
      }
      await new Promise((ok) => setTimeout(ok, 250));
    }
  } catch (e) {
    $("track-state").textContent = e.message;
    $("track-state").className = "error";
  } finally {
    S.running = null;
    $("track").disabled = false;
    document.body.dataset.trackState = $("track-state").className === "error" ? "failed" : "done";
    await loadObjects().catch((e) => status(e.message, true));  // objects a run found join the list
    await showFrame(S.frame);
  }
}

const EXPORT_IDS = { "annotated.mp4": "export-video", "masks.zip": "export-masks", "masks.jsonl": "export-jsonl",
  "instances.json": "export-coco", "tracks.csv": "export-mot", "prompts.yaml": "export-prompts" };

async function showExports(job) {
  const { files } = await api("GET", `/api/track/${job}/files`);
  const box = $("exports");
  box.innerHTML = "";
  for (const name of files) {
    const a = document.createElement("a");
    a.href = `/api/track/${job}/files/${encodeURIComponent(name)}?token=${encodeURIComponent(TOKEN)}`;
    a.download = name;
    a.textContent = "⤓ " + name;
    a.dataset.testid = EXPORT_IDS[name] || `export-${name}`;
    box.append(a);
  }
}

async function save() {
  try {
    const r = await api("POST", "/api/save");
    $("command").textContent = `saved ${r.path}\n${r.command}`;
  } catch (e) { status(e.message, true); }
}

async function clearPrompt() {
  const o = S.objects.get(S.selected);
  if (!o || !o.prompts.has(S.frame)) return;
  const id = o.id, frame = S.frame, before = copyPrompt(o.prompts.get(frame));
  try {
    await applyPrompt(id, frame, null);
    remember(`clearing object ${id} on frame ${frame}`, () => applyPrompt(id, frame, before), () => applyPrompt(id, frame, null));
  } catch (e) { status(e.message, true); }
}

async function loadObjects() {
  // The server's list, keeping what the page knows already (colours picked here, previews).
  const { objects } = await api("GET", "/api/objects");
  const seen = new Set();
  for (const o of objects) {
    seen.add(o.id);
    const old = S.objects.get(o.id);
    const prompts = new Map(o.prompts.map((p) => [p.frame, (old && old.prompts.get(p.frame)) ||
      { points: p.points, box: p.box, mask: null, based: !!p.mask }]));
    S.objects.set(o.id, { id: o.id, label: o.label, color: old ? old.color : legible(o.color), prompts,
      colourChosen: old ? old.colourChosen : false });
  }
  for (const id of [...S.objects.keys()]) if (!seen.has(id)) S.objects.delete(id);
  renderObjects();
}

async function findObjects() {
  $("find").disabled = true;
  const t0 = performance.now();
  try {
    const r = await api("POST", `/api/frames/${S.frame}/find`);
    await loadObjects();
    if (r.objects.length && S.selected === null) S.selected = r.objects[0];
    await showFrame(S.frame);
    const dropped = r.dropped ? `, ${r.dropped} too small to see left out` : "";
    status(`frame ${r.frame}: ${r.objects.length} new object(s) of ${r.found} mask(s)${dropped}, found in ${Math.round(performance.now() - t0)} ms`);
  } catch (e) {
    status(e.message, true);
  } finally {
    $("find").disabled = false;
  }
}

// ---- keys ---------------------------------------------------------------------------------------
function onKey(ev) {
  const t = ev.target;
  const typing = t.tagName === "INPUT" && (t.type === "text" || t.type === "number");
  if (ev.key === "Escape") { $("help-panel").hidden = true; return; }
  // Typing a frame number: Space still plays, Home/End still jump (a number needs none of them).
  if (typing && !(t === $("frame-input") && [" ", "Home", "End"].includes(ev.key))) return;
  const mod = ev.ctrlKey || ev.metaKey;
  if (mod && (ev.key === "z" || ev.key === "Z")) { ev.preventDefault(); step(!ev.shiftKey); return; }
  if (mod && (ev.key === "y" || ev.key === "Y")) { ev.preventDefault(); step(false); return; }
  if (mod) return;
  // The slider moves itself on arrows and Home/End (its input event shows the frame): not twice.
  const slider = t === $("scrubber");
  if (ev.key === " ") { ev.preventDefault(); setPlaying(!S.playing); }
  else if (ev.key === "?") $("help-panel").hidden = !$("help-panel").hidden;
  else if (ev.key === "h" || ev.key === "H") { if (S.selected !== null) toggleHidden(S.selected); }
  else if (ev.key === "+" || ev.key === "=") { const r = $("stage").getBoundingClientRect(); zoomAt(1.25, r.left + r.width / 2, r.top + r.height / 2); }
  else if (ev.key === "-") { const r = $("stage").getBoundingClientRect(); zoomAt(0.8, r.left + r.width / 2, r.top + r.height / 2); }
  else if (ev.key === "0") { S.zoom = { k: 1, x: 0, y: 0 }; applyZoom(); }
  else if (slider) return;
  else if (ev.key === "ArrowLeft") { setPlaying(false); showFrame(S.frame - 1); }
  else if (ev.key === "ArrowRight") { setPlaying(false); showFrame(S.frame + 1); }
  else if (ev.key === "Home") showFrame(0);
  else if (ev.key === "End") showFrame(S.video.num_frames - 1);
}

// ---- start ------------------------------------------------------------------------------------
async function start() {
  S.video = await api("GET", "/api/video");
  const { width: w, height: h, num_frames: n, fps } = S.video;
  $("video-info").textContent = `${w}×${h}, ${n} frames${fps ? ", " + fps.toFixed(2) + " fps" : ""}`;
  for (const id of ["overlay", "marks"]) { $(id).width = w; $(id).height = h; }
  // The whole frame fits the window's height, whatever the video's aspect.
  $("stage").style.maxWidth = `calc((100vh - 210px) * ${w / h})`;
  $("scrubber").max = n - 1;
  $("frame-input").max = n - 1;
  $("frame-count").textContent = `of ${n} (0–${n - 1})`;
  await loadObjects();
  if (S.objects.size) S.selected = S.objects.keys().next().value;
  // A page opened (or reloaded) after a Track shows that Track: its masks, timeline and downloads.
  const done = (await api("GET", "/api/track")).jobs.filter((j) => j.state === "done");
  if (done.length) {
    S.job = done[done.length - 1].job;
    S.presence = (await api("GET", `/api/track/${S.job}/presence`)).objects;
    await showExports(S.job).catch(() => {});
    renderTimeline();
  }
  const m = $("marks");
  m.addEventListener("pointerdown", onDown);
  m.addEventListener("pointermove", onMove);
  m.addEventListener("pointerup", onUp);
  m.addEventListener("contextmenu", (ev) => ev.preventDefault());
  $("stage").addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey) return;
    ev.preventDefault();
    zoomAt(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.clientX, ev.clientY);
  }, { passive: false });
  $("scrubber").addEventListener("input", () => { setPlaying(false); showFrame(+$("scrubber").value); });
  $("frame-input").addEventListener("change", () => { setPlaying(false); showFrame(+$("frame-input").value); });
  // Enter shows the frame and gives the keys back to the page (arrows, H, +/- work at once).
  $("frame-input").addEventListener("keydown", (ev) => { if (ev.key === "Enter") $("frame-input").blur(); });
  $("prev").onclick = () => { setPlaying(false); showFrame(S.frame - 1); };
  $("next").onclick = () => { setPlaying(false); showFrame(S.frame + 1); };
  $("play").onclick = () => setPlaying(!S.playing);
  $("undo").onclick = () => step(true);
  $("redo").onclick = () => step(false);
  $("opacity").addEventListener("input", () => { S.alpha = +$("opacity").value; drawOverlay(); });
  $("only").addEventListener("change", drawOverlay);
  $("zoom-reset").onclick = () => { S.zoom = { k: 1, x: 0, y: 0 }; applyZoom(); };
  $("help").onclick = () => { $("help-panel").hidden = !$("help-panel").hidden; };
  $("help-close").onclick = () => { $("help-panel").hidden = true; };
  document.addEventListener("keydown", onKey);
  $("add").onclick = () => addObject().catch((e) => status(e.message, true));
  $("find").onclick = findObjects;
  $("clear").onclick = clearPrompt;
  $("track").onclick = track;
  $("save").onclick = save;
  undoButtons();
  // What tests and scripts read: the mask drawn now for an object (row-major 0/1), and the state.
  window.studio = { show: showFrame, draw: drawOverlay, drawn: (id) => Array.from(S.masks.get(id) || []), colors: () => Object.fromEntries([...S.objects.values()].map((o) => [o.id, o.color])), state: () => ({ frame: S.frame, playing: S.playing, played: S.played, undo: S.undo.length, redo: S.redo.length }) };
  await showFrame(0);
  if (S.video.warning) status(S.video.warning, true);  // e.g. the toy model on real footage: said first
  document.body.dataset.ready = "1";
}

start().catch((e) => status(e.message, true));
