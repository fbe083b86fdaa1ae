"use strict";
const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const saliency = document.getElementById("saliency");
const keyInput = document.getElementById("key");
keyInput.value = sessionStorage.getItem("securemnist-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("securemnist-key", keyInput.value.trim()));

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  saliency.getContext("2d").clearRect(0, 0, saliency.width, saliency.height);
}
clearPad();

let drawing = false;
function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}
pad.addEventListener("pointerdown", e => { drawing = true; ink.beginPath(); ink.moveTo(...point(e)); pad.setPointerCapture(e.pointerId); });
pad.addEventListener("pointermove", e => {
  if (!drawing) return;
  ink.lineWidth = 20; ink.lineCap = "round"; ink.lineJoin = "round"; ink.strokeStyle = "#fff";
  ink.lineTo(...point(e)); ink.stroke();
});
pad.addEventListener("pointerup", () => { drawing = false; });

function show(decision, label, detail) {
  const d = document.getElementById("decision");
  d.textContent = decision; d.className = "decision " + decision;
  document.getElementById("label").textContent = label;
  document.getElementById("detail").textContent = detail;
}

function drawSaliency(values) {
  const context = saliency.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(255 * values[i]);
    image.data.set([v, Math.round(v * 0.55), 255 - v, 255], 4 * i);
  }
  const small = document.createElement("canvas");
  small.width = 28; small.height = 28;
  small.getContext("2d").putImageData(image, 0, 0);
  context.imageSmoothingEnabled = false;
  context.drawImage(small, 0, 0, saliency.width, saliency.height);
}

async function predict() {
  const key = keyInput.value.trim();
  sessionStorage.setItem("securemnist-key", key);
  const blob = await new Promise(resolve => pad.toBlob(resolve, "image/png"));
  let response;
  try {
    response = await fetch("/v1/predict?explain=true", { method: "POST", headers: { "Content-Type": "image/png", "Authorization": "Bearer " + key }, body: blob });
  } catch (error) {
    show("error", "?", "The service did not answer: " + error);
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    show(response.status === 422 ? "rejected" : "error", "?", (body.title || response.status) + ": " + (body.detail || ""));
    return;
  }
  const confidence = body.confidence === undefined ? "" : ` Confidence ${(100 * body.confidence).toFixed(1)}%.`;
  show(body.decision, body.label === null || body.label === undefined ? "-" : body.label, (body.reason || "The model is confident and the input looks clean.") + confidence);
  if (body.saliency) drawSaliency(body.saliency);
}

document.getElementById("predict").addEventListener("click", predict);
document.getElementById("clear").addEventListener("click", () => { clearPad(); show("-", "?", "Draw a digit and press Predict."); });
