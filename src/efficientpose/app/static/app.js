// efficientpose app: upload with progress, live job status, confirmations. No framework, no network assets.
"use strict";

function setupUpload(form) {
  const input = form.querySelector("#file");
  const drop = form.querySelector("#drop");
  const chosen = form.querySelector("#chosen");
  const message = form.querySelector("#message");
  const bar = form.querySelector("#sending");
  const button = form.querySelector("#send");
  const limit = Number(form.dataset.maxUpload);
  let file = null;

  function choose(f) {
    file = f || null;
    message.textContent = "";
    chosen.textContent = file ? `${file.name} (${(file.size / 1048576).toFixed(1)} MiB)` : "";
  }
  input.addEventListener("change", () => choose(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!file) { message.textContent = "Choose or drop a video or photo first."; return; }
    if (file.size > limit) {
      message.textContent = `${file.name}: larger than the upload limit of ${form.dataset.maxUploadText}`;
      return;
    }
    const query = new URLSearchParams({ filename: file.name });
    for (const [key, value] of new FormData(form)) {
      if (typeof value === "string") query.set(key, value);
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/upload?${query}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (p) => { if (p.lengthComputable) bar.value = p.loaded / p.total; });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (xhr.status === 201 && body.url) { window.location.assign(body.url); return; }
      message.textContent = body.error || `upload failed (HTTP ${xhr.status})`;
      button.disabled = false; bar.hidden = true;
    });
    xhr.addEventListener("error", () => {
      message.textContent = "the upload was interrupted (is the server running?)";
      button.disabled = false; bar.hidden = true;
    });
    button.disabled = true; bar.hidden = false; bar.value = 0;
    message.textContent = "";
    xhr.send(file);
  });
}

function clock(seconds) {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function setupJob(section) {
  const id = section.dataset.session;
  const status = document.getElementById("status");
  const bar = document.getElementById("progress");
  const text = document.getElementById("progress-text");
  if (["done", "failed", "cancelled", "interrupted"].includes(section.dataset.status)) return;
  async function poll() {
    try {
      const r = await fetch(`/api/sessions/${id}`, { cache: "no-store" });
      const job = await r.json();
      if (job.status !== section.dataset.status && job.finished) { window.location.reload(); return; }
      status.textContent = job.status;
      status.className = `status-${job.status}`;
      if (bar && job.frames_total) { bar.max = job.frames_total; bar.value = job.frames_done; }
      if (job.status === "running") {
        const frames = job.frames_total ? `: ${job.frames_done} of ${job.frames_total} frames` : "";
        const eta = job.eta_seconds != null && job.frames_done < job.frames_total ? `, about ${clock(job.eta_seconds)} left` : "";
        text.textContent = `(${job.phase || "starting"}${frames}${eta})`;
      } else if (job.status === "queued") {
        text.textContent = "(waiting for the jobs before it)";
      }
    } catch (e) {
      text.textContent = "(no answer from the server)";
    }
    setTimeout(poll, 1000);
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  if (form) setupUpload(form);
  const job = document.getElementById("job");
  if (job) setupJob(job);
  for (const f of document.querySelectorAll("form[data-confirm]")) {
    f.addEventListener("submit", (e) => { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
  }
});
