// ferkit web page: photos (drop or pick) and webcam mode, both through POST /v1/predict.
// Server data is always inserted as text (textContent), never as HTML.
"use strict";

// Okabe-Ito colours, one per class index, as ferkit.inference.annotate draws them.
const PALETTE = ["#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#999999"];
let classNames = [];

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function colorOf(label) {
  const i = classNames.indexOf(label);
  return PALETTE[Math.max(i, 0) % PALETTE.length];
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models");
    const m = await r.json();
    classNames = m.class_names;
    $("model-info").textContent =
      `model ${m.model}: ${m.class_names.length} expressions (${m.class_names.join(", ")}), ` +
      `face detector ${m.detector}, TTA ${m.tta}`;
  } catch (e) {
    $("model-info").textContent = "cannot reach the ferkit server";
  }
}

// One image → its result (the first entry of the JSON array); a refused request throws its message.
async function predict(blob, name, fields = {}) {
  const form = new FormData();
  form.append("file", blob, name);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const r = await fetch("/v1/predict", { method: "POST", body: form });
  if (!r.ok) {
    let message = `HTTP ${r.status}`;
    try { message = (await r.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return fields.annotate ? r.blob() : (await r.json())[0];
}

// Boxes and "label score" tags on a canvas whose pixels match the image's.
function drawFaces(ctx, faces, width, height) {
  const size = Math.max(width, height);
  const line = Math.max(2, Math.round(size / 300));
  const font = Math.max(12, Math.round(size / 35));
  ctx.lineWidth = line;
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const f of faces) {
    const { x, y, w, h } = f.box;
    const color = colorOf(f.label);
    ctx.strokeStyle = color;
    ctx.strokeRect(x, y, w, h);
    const text = `${f.label} ${f.score.toFixed(2)}`;
    const tw = ctx.measureText(text).width + 8;
    const top = y - font - 8 >= 0 ? y - font - 8 : y + h;
    ctx.fillStyle = "rgba(0, 0, 0, 0.75)";
    ctx.fillRect(x, top, tw, font + 8);
    ctx.fillStyle = color;
    ctx.fillText(text, x + 4, top + 4);
  }
}

// Probability bars of one face, in the model's class order.
function bars(face) {
  const grid = el("div", "bars");
  for (const [name, p] of Object.entries(face.probabilities)) {
    const bar = el("div", "bar");
    const fill = el("span");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    fill.style.background = colorOf(name);
    bar.append(fill);
    grid.append(el("span", "bar-name", name), bar, el("span", "bar-value", p.toFixed(2)));
  }
  return grid;
}

function faceList(list, faces) {
  list.replaceChildren();
  faces.forEach((f, i) => {
    const item = el("li");
    item.append(el("span", "face-label", f.label), ` ${f.score.toFixed(2)} (face ${i + 1})`, bars(f));
    list.append(item);
  });
}

function summary(faces) {
  return faces.length === 0 ? "no face found" : `${faces.length} face${faces.length > 1 ? "s" : ""}`;
}

async function showPhoto(file, card) {
  const status = card.querySelector(".status");
  try {
    const result = await predict(file, file.name);
    if (result.error) throw new Error(result.error);
    const canvas = card.querySelector("canvas.view");
    try {
      const image = await createImageBitmap(file); // EXIF orientation applied, as on the server
      canvas.width = image.width;
      canvas.height = image.height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(image, 0, 0);
      drawFaces(ctx, result.faces, image.width, image.height);
    } catch (e) {
      // a format this browser cannot show (HEIC, TIFF): show the server's annotated copy instead
      const img = card.querySelector("img.view-server");
      img.src = URL.createObjectURL(await predict(file, file.name, { annotate: "true", image_format: "jpeg" }));
      await img.decode();
      img.hidden = false;
      canvas.hidden = true;
    }
    faceList(card.querySelector(".faces"), result.faces);
    status.textContent = `${summary(result.faces)} · ${result.width}×${result.height}`;
    card.dataset.state = "done";
  } catch (e) {
    status.textContent = e.message;
    status.className = "status error";
    card.dataset.state = "error";
  }
}

async function showPhotos(files) {
  const jobs = [...files].map((file) => {
    const card = $("card-template").content.firstElementChild.cloneNode(true);
    card.querySelector(".name").textContent = file.name;
    $("results").prepend(card);
    return [file, card];
  });
  const worker = async () => {
    while (jobs.length) {
      const [file, card] = jobs.shift();
      await showPhoto(file, card);
    }
  };
  await Promise.all([worker(), worker()]); // two requests at a time: the server batches them
}

function setUpPhotos() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (e) => {
    showPhotos(e.target.files);
    e.target.value = "";
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    showPhotos(e.dataTransfer.files);
  });
}

// Webcam mode: a frame every 1/fps seconds while no request is in flight, boxes over the video.
const cam = { stream: null, timer: null, busy: false, sent: 0, started: 0 };

async function camFrame() {
  const video = $("cam-video");
  if (!cam.stream || cam.busy || !video.videoWidth) return;
  cam.busy = true;
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  const start = performance.now();
  try {
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
    const result = await predict(blob, "webcam.jpg", { tta: "none" });
    if (!cam.stream) return;
    cam.sent += 1;
    const overlay = $("cam-overlay");
    overlay.width = grab.width;
    overlay.height = grab.height;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    drawFaces(ctx, result.faces, overlay.width, overlay.height);
    faceList($("cam-faces"), result.faces);
    const rate = cam.sent / ((performance.now() - cam.started) / 1000);
    $("cam-status").textContent =
      `${summary(result.faces)} · ${Math.round(performance.now() - start)} ms · ` +
      `${rate.toFixed(1)} frames/s · ${cam.sent} frames`;
    $("cam-status").dataset.frames = String(cam.sent);
  } catch (e) {
    $("cam-status").textContent = e.message;
  } finally {
    cam.busy = false;
  }
}

async function camStart() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $("cam-status").textContent = "this browser gives no camera here (it needs https, or localhost)";
    return;
  }
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 } }, audio: false });
  } catch (e) {
    $("cam-status").textContent = `camera refused: ${e.message}`;
    return;
  }
  const video = $("cam-video");
  video.srcObject = cam.stream;
  await video.play();
  const fps = Math.min(10, Math.max(1, Number($("cam-fps").value) || 4));
  Object.assign(cam, { sent: 0, started: performance.now() });
  cam.timer = setInterval(camFrame, 1000 / fps);
  $("cam-start").disabled = true;
  $("cam-stop").disabled = false;
  $("cam-status").textContent = "camera on";
}

function camStop() {
  clearInterval(cam.timer);
  if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
  cam.stream = null;
  $("cam-video").srcObject = null;
  const overlay = $("cam-overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("cam-start").disabled = false;
  $("cam-stop").disabled = true;
  $("cam-status").textContent = "camera off";
}

function showTab(name) {
  for (const tab of ["photos", "webcam"]) {
    $(tab).hidden = tab !== name;
    $(`tab-${tab}`).classList.toggle("active", tab === name);
  }
  if (name !== "webcam") camStop();
}

document.addEventListener("DOMContentLoaded", () => {
  loadModel();
  setUpPhotos();
  $("tab-photos").addEventListener("click", () => showTab("photos"));
  $("tab-webcam").addEventListener("click", () => showTab("webcam"));
  $("cam-start").addEventListener("click", camStart);
  $("cam-stop").addEventListener("click", camStop);
});
