// The painting demo's page. The label map is an array of label values, one per pixel; the canvas
// shows it in the dataset's palette through putImageData at 1:1 (CSS scales it with sharp pixels), so
// every pixel is exactly one class: nothing is drawn with the canvas's anti-aliased paths.
"use strict";

const state = {
  info: null,
  labels: null,       // Uint8Array / Uint16Array [height * width]
  selected: 0,        // the brush's label value
  undo: [],           // earlier label maps (copies)
  seed: 0,
  classSeeds: {},     // {label value: seed}: noise re-sampled inside that class
  style: null,        // data URL of the style image
  busy: false,        // a generation request is on its way
  again: false,       // live mode: the map changed while a request ran
  liveTimer: null,
  imageData: null,
};
const UNDO_LIMIT = 100;
const LIVE_DELAY_MS = 400;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ server
async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error(`cannot reach the demo's server (${err.message}): is demo.py still running?`);
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    if (type.startsWith("application/json")) {
      message = (await response.json()).error || message;
    }
    throw new Error(message);
  }
  return type.startsWith("application/json") ? response.json() : response.blob();
}

function postJSON(path, body) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text) {
  $("status").textContent = text || "\u00a0";
}

// ------------------------------------------------------------------ label maps <-> base64
function newLabels() {
  const n = state.info.width * state.info.height;
  return state.info.bytes_per_value === 1 ? new Uint8Array(n) : new Uint16Array(n);
}

function encodeLabels(labels) {
  let bytes = new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength);
  if (state.info.bytes_per_value === 2 && new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    bytes = new Uint8Array(labels.length * 2);  // a big-endian machine: the server reads little-endian
    labels.forEach((v, i) => { bytes[2 * i] = v & 255; bytes[2 * i + 1] = v >> 8; });
  }
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function decodeLabels(text) {
  const raw = atob(text);
  const labels = newLabels();
  if (state.info.bytes_per_value === 1) {
    for (let i = 0; i < labels.length; i++) labels[i] = raw.charCodeAt(i);
  } else {
    for (let i = 0; i < labels.length; i++) labels[i] = raw.charCodeAt(2 * i) | (raw.charCodeAt(2 * i + 1) << 8);
  }
  return labels;
}

function labelPayload() {
  return {width: state.info.width, height: state.info.height, labels: encodeLabels(state.labels)};
}

// ------------------------------------------------------------------ drawing
function render() {
  const {width, height, classes} = state.info;
  const pixels = state.imageData.data;
  for (let i = 0; i < width * height; i++) {
    const color = classes[state.labels[i]].color;
    pixels[4 * i] = color[0];
    pixels[4 * i + 1] = color[1];
    pixels[4 * i + 2] = color[2];
    pixels[4 * i + 3] = 255;
  }
  $("label-canvas").getContext("2d").putImageData(state.imageData, 0, 0);
}

function pushUndo() {
  state.undo.push(state.labels.slice());
  if (state.undo.length > UNDO_LIMIT) state.undo.shift();
}

function undo() {
  if (!state.undo.length) return;
  state.labels = state.undo.pop();
  render();
  changed();
}

function setLabels(labels) {
  pushUndo();
  state.labels = labels;
  render();
  changed();
}

// A brush of size s paints the pixels whose centres lie within (s - 1) / 2 of the pointer's pixel.
function stamp(cx, cy, value) {
  const {width, height} = state.info;
  const size = parseInt($("brush-size").value, 10);
  const r = (size - 1) / 2;
  const reach = Math.floor(r);
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = -reach; dx <= reach; dx++) {
      const x = cx + dx, y = cy + dy;
      if (dx * dx + dy * dy <= r * r && x >= 0 && y >= 0 && x < width && y < height) {
        state.labels[y * width + x] = value;
      }
    }
  }
}

// Every pixel of the segment from (x0, y0) to (x1, y1), one per step of the longer axis.
function strokeSegment(x0, y0, x1, y1, value) {
  const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0));
  for (let i = 0; i <= n; i++) {
    const t = n === 0 ? 0 : i / n;
    stamp(Math.round(x0 + (x1 - x0) * t), Math.round(y0 + (y1 - y0) * t), value);
  }
}

// 4-connected flood fill of the region of (x, y)'s label value.
function fill(x, y, value) {
  const {width, height} = state.info;
  const target = state.labels[y * width + x];
  if (target === value) return;
  const stack = [y * width + x];
  state.labels[y * width + x] = value;
  while (stack.length) {
    const i = stack.pop();
    const px = i % width, py = (i - px) / width;
    const next = [];
    if (px > 0) next.push(i - 1);
    if (px < width - 1) next.push(i + 1);
    if (py > 0) next.push(i - width);
    if (py < height - 1) next.push(i + width);
    for (const j of next) {
      if (state.labels[j] === target) {
        state.labels[j] = value;
        stack.push(j);
      }
    }
  }
}

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

function pixelAt(event) {
  const canvas = $("label-canvas");
  const rect = canvas.getBoundingClientRect();  // the border box: the pixels start inside the border
  const {width, height} = state.info;
  const x = Math.floor((event.clientX - rect.left - canvas.clientLeft) / canvas.clientWidth * width);
  const y = Math.floor((event.clientY - rect.top - canvas.clientTop) / canvas.clientHeight * height);
  return [Math.min(width - 1, Math.max(0, x)), Math.min(height - 1, Math.max(0, y))];
}

function setupCanvas() {
  const canvas = $("label-canvas");
  const {width, height} = state.info;
  canvas.width = width;
  canvas.height = height;
  const side = Math.max(width, height);
  const scale = side <= 512 ? Math.floor(512 / side) : 512 / side;
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  state.imageData = canvas.getContext("2d").createImageData(width, height);
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const [x, y] = pixelAt(event);
    pushUndo();
    if (tool() === "fill") {
      fill(x, y, state.selected);
      render();
      changed();
      return;
    }
    canvas.setPointerCapture(event.pointerId);
    last = [x, y];
    strokeSegment(x, y, x, y, brushValue());
    render();
  });
  canvas.addEventListener("pointermove", (event) => {
    const [x, y] = pixelAt(event);
    showCursor(x, y);
    if (!last) return;
    strokeSegment(last[0], last[1], x, y, brushValue());
    last = [x, y];
    render();
  });
  const end = () => {
    if (!last) return;
    last = null;
    changed();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function brushValue() {
  return tool() === "eraser" ? state.info.eraser : state.selected;
}

function showCursor(x, y) {
  const value = state.labels[y * state.info.width + x];
  $("cursor-info").textContent = `x ${x}, y ${y}: ${state.info.classes[value].name} (${value})`;
}

// ------------------------------------------------------------------ classes
function buildClassList() {
  const list = $("class-list");
  list.textContent = "";
  for (const c of state.info.classes) {
    const item = document.createElement("li");
    item.dataset.value = c.value;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${c.color.join(",")})`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = c.value;
    item.append(swatch, name, value);
    item.addEventListener("click", () => selectClass(c.value));
    list.append(item);
  }
  $("class-filter").addEventListener("input", () => {
    const text = $("class-filter").value.toLowerCase();
    for (const item of list.children) {
      item.hidden = text && !item.textContent.toLowerCase().includes(text);
    }
  });
}

function selectClass(value) {
  state.selected = value;
  for (const item of $("class-list").children) {
    item.classList.toggle("selected", Number(item.dataset.value) === value);
  }
  if (tool() === "eraser") $("tool-brush").checked = true;
  $("resample-class").textContent = `Re-sample the noise of ${state.info.classes[value].name}`;
}

// ------------------------------------------------------------------ generation
function changed() {
  if (!$("live").checked) {
    if (!$("result-image").hidden) setStatus("the label map changed: press Generate for a new image");
    return;
  }
  clearTimeout(state.liveTimer);
  state.liveTimer = setTimeout(() => {
    if (state.busy) state.again = true;
    else generate();
  }, LIVE_DELAY_MS);
}

function newTicket() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

async function generate() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  showError("");
  $("generate").disabled = true;
  const ticket = newTicket();
  const request = Object.assign(labelPayload(), {
    seed: state.seed, class_seeds: state.classSeeds, style: state.style, ticket,
  });
  setStatus("generating...");
  const poll = setInterval(async () => {
    try {
      const where = await api(`/api/queue?ticket=${encodeURIComponent(ticket)}`);
      if (where.state === "waiting") {
        setStatus(`queued: ${where.ahead} request${where.ahead === 1 ? "" : "s"} ahead`);
      } else if (where.state === "running") {
        setStatus("generating...");
      }
    } catch (err) { /* the answer itself will tell */ }
  }, 250);
  try {
    const result = await postJSON("/api/generate", request);
    showResult(result);
    const wait = result.waited_ms < 1000 ? `${Math.round(result.waited_ms)} ms`
      : `${(result.waited_ms / 1000).toFixed(1)} s`;
    const waited = result.ahead ? `, after waiting ${wait} behind ` +
      `${result.ahead} request${result.ahead === 1 ? "" : "s"}` : "";
    setStatus(`generated ${result.width}x${result.height} in ${Math.round(result.ms)} ms${waited}`);
  } catch (err) {
    setStatus("");
    showError(err.message);
  } finally {
    clearInterval(poll);
    state.busy = false;
    $("generate").disabled = false;
    if (state.again && $("live").checked) generate();
  }
}

function showResult(result) {
  const image = $("result-image");
  const canvas = $("label-canvas");
  image.src = result.image;
  image.dataset.width = result.width;
  image.dataset.height = result.height;
  image.style.width = canvas.style.width;
  image.style.height = canvas.style.height;
  image.hidden = false;
  const link = $("download-image");
  link.href = result.image;
  link.download = `${state.info.name}_synthesized.png`;
  link.hidden = false;
  const extras = $("extras");
  extras.textContent = "";
  for (const extra of result.extras) {
    for (const [picture, url] of Object.entries(extra.pictures)) {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = url;
      img.alt = picture;
      img.dataset.extra = picture;
      const caption = document.createElement("figcaption");
      caption.textContent = extraCaption(picture, extra);
      figure.append(img, caption);
      extras.append(figure);
    }
  }
}

function extraCaption(picture, extra) {
  if (extra.values) {
    const top = extra.values.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 3)
      .map(([v, i]) => `#${i} ${v.toFixed(3)}`).join(", ");
    return `${picture} (${extra.values.length} weights; largest ${top})`;
  }
  return picture.endsWith("_heatmap") ? `${picture} (blue 0 .. red 1)` : `${picture} (black 0 .. white 1)`;
}

function randomSeed() {
  return Math.floor(Math.random() * 2 ** 31);
}

function describeNoise() {
  const parts = [`seed ${state.seed}`];
  for (const [value, seed] of Object.entries(state.classSeeds)) {
    parts.push(`${state.info.classes[value].name}: seed ${seed}`);
  }
  $("noise-info").textContent = `noise: ${parts.join("; ")}`;
}

// ------------------------------------------------------------------ start points
function showValPicker(show) {
  $("val-picker").hidden = !show;
  $("open-val").textContent = show ? "Hide the val label maps" : "Start from a val label map";
}

async function openValPicker() {
  const picker = $("val-picker");
  showValPicker(picker.hidden);
  if (picker.hidden || $("val-grid").children.length) return;
  const {val, val_total, val_note} = state.info;
  $("val-note").textContent = val.length
    ? `${val_total} val label maps${val_total > val.length ? `; the first ${val.length} are offered` : ""}: click one`
    : (val_note || "the run's dataset has no val label maps here");
  for (const item of val) {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.src = `/api/val/${item.index}.png`;
    img.alt = item.stem;
    img.title = item.stem;
    img.dataset.index = item.index;
    img.addEventListener("click", async () => {
      try {
        const answer = await api(`/api/val/${item.index}`);
        setLabels(decodeLabels(answer.labels));
        showValPicker(false);
        setStatus(`started from val label map ${item.stem}`);
        showError("");
      } catch (err) {
        showError(err.message);
      }
    });
    $("val-grid").append(img);
  }
}

async function uploadLabels(file) {
  showError("");
  try {
    const answer = await api("/api/upload_labels", {
      method: "POST", headers: {"X-Filename": encodeURIComponent(file.name)}, body: file,
    });
    setLabels(decodeLabels(answer.labels));
    setStatus(`loaded ${file.name}${answer.notes.length ? ` (${answer.notes.join("; ")})` : ""}`);
  } catch (err) {
    setStatus("");
    showError(err.message);
  } finally {
    $("upload-labels").value = "";
  }
}

function readDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// ------------------------------------------------------------------ downloads
function downloadBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ------------------------------------------------------------------ start
function describeRun(info) {
  const generator = info.generator ? `, netG ${info.generator}` : "";
  const weights = Object.entries(info.weights).map(([k, v]) => `net${k} ${v}`).join(", ");
  return `run ${info.name}: ${info.model}${generator}, ${info.dataset_mode} classes, ` +
    `${info.width}x${info.height}, epoch ${info.which_epoch}${weights ? ` (${weights})` : ""}`;
}

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    showError(`cannot read the model's description: ${err.message}`);
    return;
  }
  const info = state.info;
  $("run-info").textContent = describeRun(info);
  $("eraser-label").textContent = `Eraser (${info.classes[info.eraser].name})`;
  state.seed = info.seed;
  state.labels = newLabels().fill(info.blank);
  setupCanvas();
  buildClassList();
  selectClass(info.blank === 0 && info.classes.length > 1 ? 1 : 0);
  render();
  $("undo").addEventListener("click", undo);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "z") {
      event.preventDefault();
      undo();
    } else if (event.key === "Escape" && !$("val-picker").hidden) {
      showValPicker(false);
    }
  });
  $("clear").addEventListener("click", () => setLabels(newLabels().fill(info.blank)));
  $("generate").addEventListener("click", generate);
  $("live").addEventListener("change", () => { if ($("live").checked) generate(); });
  $("open-val").addEventListener("click", openValPicker);
  $("upload-labels").addEventListener("change", () => {
    const file = $("upload-labels").files[0];
    if (file) uploadLabels(file);
  });
  $("download-labels-colour").addEventListener("click", (event) => {
    event.preventDefault();
    $("label-canvas").toBlob((blob) => downloadBlob(blob, `${info.name}_labels_colour.png`), "image/png");
  });
  $("download-labels-ids").addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      downloadBlob(await postJSON("/api/label_png", labelPayload()), `${info.name}_labels.png`);
    } catch (err) {
      showError(err.message);
    }
  });
  if (info.noise) {
    $("noise-controls").hidden = false;
    $("resample-class").hidden = !info.resample_class;
    describeNoise();
    $("new-noise").addEventListener("click", () => {
      state.seed = randomSeed();
      state.classSeeds = {};
      describeNoise();
      generate();
    });
    $("resample-class").addEventListener("click", () => {
      state.classSeeds[state.selected] = randomSeed();
      describeNoise();
      generate();
    });
  }
  if (info.style_image) {
    $("style-controls").hidden = false;
    $("style-upload").addEventListener("change", async () => {
      const file = $("style-upload").files[0];
      if (!file) return;
      state.style = await readDataURL(file);
      $("style-preview").src = state.style;
      $("style-preview").hidden = false;
      $("style-info").textContent = `style from ${file.name}`;
      changed();
    });
    $("clear-style").addEventListener("click", () => {
      state.style = null;
      $("style-preview").hidden = true;
      $("style-upload").value = "";
      $("style-info").textContent = "no style image: z is drawn from N(0, I)";
      changed();
    });
  }
  document.body.dataset.ready = "true";
}

start();
