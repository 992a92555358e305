// The drawing page: strokes on a canvas -> PNG -> POST /predict (live) and /feature-maps (after
// each stroke), which frames it like the training images and returns the model input it made.
// Plain browser JavaScript, no libraries, so the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);
// The page's sentences in its language (the server writes them into the page): t("sure", {percent: 97.1}).
const TEXT = JSON.parse($("texts").textContent);
const LANG = document.documentElement.lang || "en";
const t = (key, values = {}) => TEXT[key].replace(/\{(\w+)\}/g, (field, name) => String(values[name]));
const pad = $("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });
const state = {
  model: null, strokes: [], current: null,
  sequence: 0, shown: 0,  // numbers of requests sent and of the newest one shown
  inFlight: false, pending: false, pendingMaps: false,
};

// --- model facts ---------------------------------------------------------------------------

async function loadModel() {
  const response = await fetch("/model", { headers: { "Accept-Language": LANG } });
  const model = await response.json();
  state.model = model;
  $("fact-name").textContent = model.name;
  $("fact-classes").textContent = model.class_names.length;
  $("fact-input").textContent = model.input_shape.join(" × ");
  $("fact-params").textContent = model.parameters.total.toLocaleString(LANG);
  $("fact-accuracy").textContent = model.test_accuracy == null ? t("notAvailable") : (100 * model.test_accuracy).toFixed(1) + " %";
  renderBars(null);
}

// --- drawing -------------------------------------------------------------------------------

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function drawStroke(stroke) {
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = stroke.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const [first, ...rest] = stroke.points;
  if (rest.length === 0) {  // a tap is a dot
    ctx.beginPath();
    ctx.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(first[0], first[1]);
  for (const [x, y] of rest) ctx.lineTo(x, y);
  ctx.stroke();
}

function redraw() {
  clearPad();
  state.strokes.forEach(drawStroke);
  if (state.current) drawStroke(state.current);
  const empty = state.strokes.length === 0 && !state.current;
  $("pad-empty").hidden = !empty;
  $("undo").disabled = state.strokes.length === 0;
  $("clear").disabled = empty;
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.current = { width: Number($("brush").value), points: [padPoint(event)] };
  redraw();
});
pad.addEventListener("pointermove", (event) => {
  if (!state.current) return;
  state.current.points.push(padPoint(event));
  redraw();
  requestPrediction(false);  // live, while the stroke is being drawn
});
function endStroke() {
  if (!state.current) return;
  state.strokes.push(state.current);
  state.current = null;
  redraw();
  requestPrediction(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

$("undo").addEventListener("click", () => { state.strokes.pop(); redraw(); requestPrediction(true); });
$("clear").addEventListener("click", () => { state.strokes = []; redraw(); requestPrediction(true); });
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); $("undo").click(); }
});

// --- what is sent ---------------------------------------------------------------------------

// Whether anything is drawn: the pad is white, strokes are black.
function hasInk() {
  return state.strokes.length > 0 || state.current !== null;
}

function canvasBlob(canvas) {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// The pad exactly as drawn. Inverting, cropping and centring are the server's: it frames every
// picture the way the model's training images are framed, and sends back what the model saw.
async function drawingBlob() {
  return hasInk() ? canvasBlob(pad) : null;
}

async function post(path, blob, name) {
  const form = new FormData();
  form.append("image", blob, name);
  const response = await fetch(path + "?top_k=3", { method: "POST", body: form, headers: { "Accept-Language": LANG } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// aria-busy on the result: a screen reader waits to announce it (and a test to read it) until the
// prediction for the newest drawing is shown, not one for a stroke ago.
function markBusy(busy) {
  $("result").setAttribute("aria-busy", String(busy));
}

// One request at a time; while one is in flight only the newest drawing is remembered, so
// a fast stroke does not queue up dozens of stale predictions.
async function requestPrediction(withMaps) {
  markBusy(true);
  if (state.inFlight) {
    state.pending = true;
    state.pendingMaps = state.pendingMaps || withMaps;
    return;
  }
  state.inFlight = true;
  try {
    const blob = await drawingBlob();
    if (!blob) { showEmpty(); return; }
    const sequence = ++state.sequence;
    if (withMaps) {
      const result = await post("/feature-maps", blob, "drawing.png");
      if (sequence >= state.shown) show(result.prediction, t("yourDrawing"), result);
    } else {
      const result = await post("/predict", blob, "drawing.png");
      if (sequence >= state.shown) show(result, t("yourDrawingLive"), null);
    }
    state.shown = sequence;
  } catch (error) {
    showError(error);
  } finally {
    state.inFlight = false;
    if (state.pending) {
      const maps = state.pendingMaps;
      state.pending = false;
      state.pendingMaps = false;
      requestPrediction(maps);
    } else {
      markBusy(false);
    }
  }
}

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (!file) return;
  $("file-name").textContent = file.name;
  markBusy(true);
  try {
    const sequence = ++state.sequence;
    const result = await post("/feature-maps", file, file.name);
    state.shown = sequence;
    show(result.prediction, t("upload", { name: file.name }), result);
  } catch (error) {
    showError(error);
  } finally {
    markBusy(state.inFlight || state.pending);
  }
  $("file").value = "";  // choosing the same file again still fires "change"
});

// --- what is shown --------------------------------------------------------------------------

function renderBars(prediction) {
  const names = state.model ? state.model.class_names : [];
  const top = prediction ? prediction.index : -1;
  $("bars").replaceChildren(...names.map((name, i) => {
    const p = prediction ? prediction.probabilities[i] : 0;
    const row = document.createElement("li");
    row.className = "bar" + (i === top ? " top" : "");
    row.dataset.probability = String(p);
    row.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
    row.querySelector(".name").textContent = name;
    row.querySelector(".fill").style.width = (100 * p).toFixed(2) + "%";
    row.querySelector(".value").textContent = prediction ? (100 * p).toFixed(1) + " %" : "";
    return row;
  }));
}

function show(prediction, source, maps) {
  $("error").hidden = true;
  $("source").textContent = source;
  $("label").textContent = prediction.label;
  $("confidence").textContent = t("sure", { percent: (100 * prediction.top[0].probability).toFixed(1) + " %" });
  $("inverted").hidden = !prediction.inverted;
  renderBars(prediction);
  if (maps) {
    $("seen").src = maps.input;
    $("seen").hidden = false;
    $("seen-caption").textContent = t("modelInput", { framing: prediction.framing });
    renderMaps(maps.layers);
  }
}

function renderMaps(layers) {
  $("layers").replaceChildren(...layers.map((layer) => {
    const section = document.createElement("div");
    section.className = "layer";
    const title = document.createElement("h3");
    title.textContent = layer.name;
    const detail = document.createElement("small");
    const [h, w, c] = layer.shape;
    detail.textContent = `${layer.type} · ${h} × ${w} × ${c}` + (layer.tiles.length < c ? " · " + t("firstChannels", { count: layer.tiles.length }) : "");
    title.append(detail);
    const tiles = document.createElement("div");
    tiles.className = "tiles";
    tiles.style.setProperty("--tile", Math.max(36, Math.min(72, 2.2 * h)) + "px");
    tiles.append(...layer.tiles.map((src, i) => {
      const img = document.createElement("img");
      img.src = src;
      const [lo, hi] = layer.ranges[i];
      img.title = t("channel", { layer: layer.name, index: i, low: lo.toFixed(2), high: hi.toFixed(2) });
      img.alt = img.title;
      return img;
    }));
    section.append(title, tiles);
    return section;
  }));
}

function showEmpty() {
  state.shown = ++state.sequence;
  $("source").textContent = t("nothingYet");
  $("label").textContent = "–";
  $("confidence").textContent = "";
  $("inverted").hidden = true;
  $("seen").hidden = true;
  $("error").hidden = true;
  renderBars(null);
  const hint = document.createElement("p");
  hint.className = "hint";
  hint.textContent = t("drawOrUpload");
  $("layers").replaceChildren(hint);
}

function showError(error) {
  $("error").textContent = error.message;
  $("error").hidden = false;
}

clearPad();
redraw();
loadModel().catch(showError);
