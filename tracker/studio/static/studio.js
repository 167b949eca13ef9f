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

// Paints the mask's pixels into an RGBA buffer of the video's size.
function paintRle(rgba, rle, color, alpha) {
  const [h, w] = rle.size;
  const counts = rleCounts(rle.counts);
  let idx = 0;
  for (let r = 0; r < counts.length; r++) {
    const n = counts[r];
    if (r % 2 === 1) {
      for (let j = idx; j < idx + n; j++) {
        const x = Math.floor(j / h), y = j - x * h;
        const o = (y * w + x) * 4;
        rgba[o] = color[0]; rgba[o + 1] = color[1]; rgba[o + 2] = color[2]; rgba[o + 3] = alpha;
      }
    }
    idx += n;
  }
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

function drawOverlay() {
  const { width: w, height: h } = S.video;
  const ctx = $("overlay").getContext("2d");
  const img = ctx.createImageData(w, h);
  for (const [o, rle] of masksOn(S.frame)) paintRle(img.data, rle, o.color, 128);
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

async function showFrame(i) {
  i = Math.max(0, Math.min(S.video.num_frames - 1, i | 0));
  S.frame = i;
  const ticket = ++S.drawn;
  $("scrubber").value = i;
  $("frame-no").textContent = `frame ${i} / ${S.video.num_frames - 1}`;
  const img = $("frame");
  const loaded = new Promise((ok) => { img.onload = ok; img.onerror = ok; });
  img.src = frameUrl(i);
  for (const j of [i + 1, i - 1]) if (j >= 0 && j < S.video.num_frames) new Image().src = frameUrl(j);
  await Promise.all([loaded, loadPreviews(i), loadTracked(i)]);
  if (ticket === S.drawn) {
    drawOverlay();
    document.body.dataset.shown = String(i);  // the frame and its overlay are on screen
  }
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

async function loadTracked(frame) {
  if (S.job === null || S.tracked.has(frame)) return;
  try {
    const r = await api("GET", `/api/track/${S.job}/frames/${frame}`);
    const byId = {};
    for (const o of r.objects) byId[o.id] = o.mask;
    S.tracked.set(frame, byId);
    if (S.tracked.size > 256) S.tracked.delete(S.tracked.keys().next().value);
  } catch (e) {
    status(e.message, true);
  }
}

// ---- objects ----------------------------------------------------------------------------------
function renderObjects() {
  const ul = $("objects");
  ul.innerHTML = "";
  for (const o of S.objects.values()) {
    const li = document.createElement("li");
    li.dataset.id = o.id;
    if (o.id === S.selected) li.className = "selected";
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = "#" + o.id;
    const color = document.createElement("input");
    color.type = "color";
    color.value = "#" + o.color.map((v) => v.toString(16).padStart(2, "0")).join("");
    color.title = "overlay colour (this page only)";
    color.oninput = () => {
      o.color = [1, 3, 5].map((k) => parseInt(color.value.slice(k, k + 2), 16));
      drawOverlay();
    };
    const label = document.createElement("input");
    label.type = "text";
    label.placeholder = "label";
    label.value = o.label || "";
    label.onchange = async () => {
      try {
        const r = await api("PUT", `/api/objects/${o.id}`, { label: label.value || null });
        o.label = r.label;
      } catch (e) { status(e.message, true); }
    };
    const frames = document.createElement("span");
    frames.className = "frames";
    frames.textContent = o.prompts.size ? "f " + [...o.prompts.keys()].sort((a, b) => a - b).join(",") : "no prompt";
    const del = document.createElement("button");
    del.textContent = "✕";
    del.title = "delete this object";
    del.onclick = async (ev) => {
      ev.stopPropagation();
      try {
        await api("DELETE", `/api/objects/${o.id}`);
        S.objects.delete(o.id);
        if (S.selected === o.id) S.selected = null;
        renderObjects();
        drawOverlay();
      } catch (e) { status(e.message, true); }
    };
    li.onclick = () => { S.selected = o.id; renderObjects(); drawMarks(); };
    li.append(id, color, label, frames, del);
    ul.append(li);
  }
}

async function addObject() {
  const id = Math.max(0, ...S.objects.keys()) + 1;
  const r = await api("PUT", `/api/objects/${id}`, { label: null });
  S.objects.set(id, { id, label: r.label, color: r.color, prompts: new Map() });
  S.selected = id;
  renderObjects();
  return S.objects.get(id);
}

async function sendPrompt(o, frame, points, box) {
  const t0 = performance.now();
  const r = await api("PUT", `/api/objects/${o.id}/prompts/${frame}`, { points, box });
  o.prompts.set(frame, { points, box, mask: r.mask, score: r.score });
  status(`object ${o.id}, frame ${frame}: preview in ${Math.round(performance.now() - t0)} ms (score ${r.score})`);
  renderObjects();
  if (frame === S.frame) drawOverlay();
}

// ---- pointer: click = point, drag = box ---------------------------------------------------------
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
  press = { xy: videoXY(ev), client: [ev.clientX, ev.clientY], button: ev.button, shift: ev.shiftKey };
}

async function onUp(ev) {
  if (!press) return;
  const p = press;
  press = null;
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
    await sendPrompt(o, S.frame, points, box);
  } catch (e) {
    status(e.message, true);
  }
}

// ---- Track and Save ---------------------------------------------------------------------------
async function track() {
  $("track").disabled = true;
  $("track-state").className = "";
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
        $("track-state").textContent += ` → ${st.output_dir}`;
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

async function save() {
  try {
    const r = await api("POST", "/api/save");
    $("command").textContent = `saved ${r.path}\n${r.command}`;
  } catch (e) { status(e.message, true); }
}

async function clearPrompt() {
  const o = S.objects.get(S.selected);
  if (!o || !o.prompts.has(S.frame)) return;
  try {
    await api("DELETE", `/api/objects/${o.id}/prompts/${S.frame}`);
    o.prompts.delete(S.frame);
    renderObjects();
    drawOverlay();
  } catch (e) { status(e.message, true); }
}

async function loadObjects() {
  // The server's list, keeping what the page knows already (colours picked here, previews).
  const { objects } = await api("GET", "/api/objects");
  const seen = new Set();
  for (const o of objects) {
    seen.add(o.id);
    const old = S.objects.get(o.id);
    const prompts = new Map(o.prompts.map((p) => [p.frame, (old && old.prompts.get(p.frame)) || { points: p.points, box: p.box, mask: null }]));
    S.objects.set(o.id, { id: o.id, label: o.label, color: old ? old.color : o.color, prompts });
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
    status(`frame ${r.frame}: ${r.objects.length} new object(s) of ${r.found} mask(s) found in ${Math.round(performance.now() - t0)} ms`);
  } catch (e) {
    status(e.message, true);
  } finally {
    $("find").disabled = false;
  }
}

// ---- start ------------------------------------------------------------------------------------
async function start() {
  S.video = await api("GET", "/api/video");
  const { width: w, height: h, num_frames: n, fps } = S.video;
  $("video-info").textContent = `${w}×${h}, ${n} frames${fps ? ", " + fps.toFixed(2) + " fps" : ""}`;
  for (const id of ["overlay", "marks"]) { $(id).width = w; $(id).height = h; }
  // The whole frame fits the window's height, whatever the video's aspect.
  $("stage").style.maxWidth = `calc((100vh - 150px) * ${w / h})`;
  $("scrubber").max = n - 1;
  await loadObjects();
  if (S.objects.size) S.selected = S.objects.keys().next().value;
  const m = $("marks");
  m.addEventListener("pointerdown", onDown);
  m.addEventListener("pointerup", onUp);
  m.addEventListener("contextmenu", (ev) => ev.preventDefault());
  $("scrubber").addEventListener("input", () => showFrame(+$("scrubber").value));
  $("prev").onclick = () => showFrame(S.frame - 1);
  $("next").onclick = () => showFrame(S.frame + 1);
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" && ev.target.type === "text") return;
    if (ev.key === "ArrowLeft") showFrame(S.frame - 1);
    if (ev.key === "ArrowRight") showFrame(S.frame + 1);
  });
  $("add").onclick = () => addObject().catch((e) => status(e.message, true));
  $("find").onclick = findObjects;
  $("clear").onclick = clearPrompt;
  $("track").onclick = track;
  $("save").onclick = save;
  await showFrame(0);
  document.body.dataset.ready = "1";
}

start().catch((e) => status(e.message, true));
