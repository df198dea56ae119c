// The MusAE latent explorer page: songs -> codes -> blend pad / genre flower / attributes ->
// decoded tokens, drawn as pianorolls and played with Tone.js. Talks only to its own server.
"use strict";

const SILENT = 128, HOLD = 129, STEPS_PER_BAR = 16;
const SLOT_NAMES = ["A", "B", "C", "D"];
const TRACK_COLOURS = ["#6d4c41", "#1565c0", "#2e7d32", "#8e24aa"];

const state = {
  run: null, songs: [], map: null,
  slots: SLOT_NAMES.map(() => ({song: "", info: null, startBar: -1, encoded: null})),
  puck: {x: 0.5, y: 0.5},
  base: null,      // {code, tokens}: the code before the attribute sliders
  current: null,   // {code, tokens}: what is drawn, played and downloaded
  amounts: {},
  programs: null, tempo: 120,
  muted: [false, false, false, false],
};
// For tests and curious users: how many notes the player has scheduled so far.
window.musaeExplorer = {notesScheduled: 0, decodes: 0, state};

const $ = (id) => document.getElementById(id);
if (window.musaeSavedWorker) window.Worker = window.musaeSavedWorker;  // See no-workers.js.

function say(text, ok) {
  const message = $("message");
  message.textContent = text || "";
  message.className = ok ? "ok" : "";
}

// ---- the API: JSON in, JSON out; errors carry the server's one-line message ----------------

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.blob();
}

// Runs at most one request of a kind at a time; while one runs, only the newest call waits
// (older waiting calls are dropped): a dragged puck never queues stale decodes.
function latestOnly(task) {
  let running = false, pending = null;
  async function pump() {
    running = true;
    busy(+1);
    try {
      while (pending) {
        const args = pending;
        pending = null;
        try { await task(...args); } catch (error) { say(error.message); }
      }
    } finally {
      running = false;
      busy(-1);
    }
  }
  return (...args) => { pending = args; if (!running) pump(); };
}

let busyCount = 0;
function busy(delta) {
  busyCount += delta;
  $("busy").hidden = busyCount <= 0;
}

// ---- pianorolls ---------------------------------------------------------------------------

function notes(tokens, track) {
  // [{start, end, pitch}] of one track: an onset token starts a note, HOLD tokens extend it.
  const result = [];
  let open = null;
  tokens.forEach((row, step) => {
    const token = row[track];
    if (token === HOLD && open) { open.end = step + 1; return; }
    open = null;
    if (token < SILENT) { open = {start: step, end: step + 1, pitch: token}; result.push(open); }
  });
  return result;
}

function drawRoll(canvas, tokens) {
  const context = canvas.getContext("2d");
  const width = canvas.width, height = canvas.height;
  context.clearRect(0, 0, width, height);
  if (!tokens || !tokens.length) return;
  const steps = tokens.length, band = height / 4, stepWidth = (width - 50) / steps;
  for (let track = 0; track < 4; track++) {
    const top = track * band;
    context.fillStyle = track % 2 ? "#f0f0f0" : "#fafafa";
    context.fillRect(0, top, width, band);
    context.fillStyle = "#555";
    context.font = "11px sans-serif";
    context.fillText(state.run ? state.run.tracks[track] : "", 2, top + 12);
    const trackNotes = notes(tokens, track);
    let low = 127, high = 0;
    trackNotes.forEach((n) => { low = Math.min(low, n.pitch); high = Math.max(high, n.pitch); });
    if (low > high) { low = 48; high = 72; }
    if (high - low < 12) { const mid = (low + high) >> 1; low = mid - 6; high = mid + 6; }
    const rowHeight = (band - 6) / (high - low + 1);
    trackNotes.forEach((n) => {
      const y = top + 3 + (high - n.pitch) * rowHeight;
      context.fillStyle = TRACK_COLOURS[track];
      context.globalAlpha = 0.45;
      context.fillRect(50 + n.start * stepWidth, y, (n.end - n.start) * stepWidth - 1,
                       Math.max(rowHeight, 2));
      context.globalAlpha = 1;
      context.fillRect(50 + n.start * stepWidth, y, Math.max(stepWidth * 0.3, 2),
                       Math.max(rowHeight, 2));
    });
  }
  context.strokeStyle = "rgba(21, 101, 192, 0.5)";
  for (let step = 0; step <= steps; step += STEPS_PER_BAR) {
    context.beginPath();
    context.moveTo(50 + step * stepWidth, 0);
    context.lineTo(50 + step * stepWidth, height);
    context.stroke();
  }
  if (canvas.id === "roll-current" && player.playing) {
    context.fillStyle = "rgba(255, 179, 0, 0.35)";
    context.fillRect(50 + (player.step % steps) * stepWidth, 0, stepWidth, height);
  }
}

function setCurrent(result, caption, keepBase) {
  if (!keepBase) state.base = {code: result.code, tokens: result.tokens};
  state.current = {code: result.code, tokens: result.tokens};
  window.musaeExplorer.decodes += 1;
  $("current-caption").textContent = caption +
      (result.nearest_genre !== undefined ? ` (nearest component: ${result.nearest_genre})` : "");
  drawRoll($("roll-current"), state.current.tokens);
  drawFlower();
}

// ---- songs --------------------------------------------------------------------------------

function buildSlots() {
  const container = $("slots");
  SLOT_NAMES.forEach((name, index) => {
    const slot = document.createElement("div");
    slot.className = "slot";
    slot.innerHTML = `<span class="name">${name}</span>
      <select class="song" id="song-${index}"><option value="">(none)</option></select>
      <select class="bar" id="bar-${index}" disabled></select>
      <div class="status" id="status-${index}"></div>`;
    container.appendChild(slot);
    const songSelect = slot.querySelector(".song");
    state.songs.forEach((song) => songSelect.add(new Option(song.id, song.id)));
    songSelect.addEventListener("change", () => pickSong(index, songSelect.value));
    slot.querySelector(".bar").addEventListener(
        "change", (event) => pickWindow(index, Number(event.target.value)));
  });
}

function addSongOption(id) {
  SLOT_NAMES.forEach((_, index) => {
    const select = $(`song-${index}`);
    if (![...select.options].some((o) => o.value === id)) select.add(new Option(id, id));
  });
}

async function pickSong(index, id) {
  const slot = state.slots[index];
  const status = $(`status-${index}`), barSelect = $(`bar-${index}`);
  Object.assign(slot, {song: id, info: null, encoded: null});
  barSelect.innerHTML = "";
  barSelect.disabled = true;
  status.textContent = "";
  status.className = "status";
  if (!id) { drawPad(); return; }
  try {
    const info = await api(`/api/song?id=${encodeURIComponent(id)}`);
    showSongInfo(index, info);
  } catch (error) {
    status.textContent = error.message;
    status.className = "status error";
    drawPad();
  }
}

function showSongInfo(index, info) {
  const slot = state.slots[index], barSelect = $(`bar-${index}`);
  slot.info = info;
  $(`status-${index}`).textContent =
      `${info.num_bars} bars at ${Math.round(info.tempo_qpm)} bpm; windows start at bars ${info.valid_bars}`;
  info.start_bars.forEach((bar) => barSelect.add(new Option(`bar ${bar}`, bar)));
  barSelect.disabled = false;
  pickWindow(index, info.start_bars[0]);
}

async function pickWindow(index, startBar) {
  const slot = state.slots[index];
  slot.startBar = startBar;
  busy(+1);
  try {
    const result = await api("/api/encode", {song: slot.song, start_bar: startBar});
    slot.encoded = result;
    $("input-caption").textContent = `input window: ${slot.song}, bar ${result.start_bar}`;
    drawRoll($("roll-input"), result.input);
    drawRoll($("roll-reconstruction"), result.reconstruction);
    if (index === 0 || !state.programs) {
      state.programs = result.programs;
      state.tempo = result.tempo_qpm;
      $("tempo").value = Math.round(result.tempo_qpm);
      player.setTempo(result.tempo_qpm);
    }
    setCurrent({code: result.code, tokens: result.reconstruction,
                nearest_genre: result.nearest_genre}, `${SLOT_NAMES[index]}: ${slot.song}`);
    drawPad();
  } catch (error) {
    $(`status-${index}`).textContent = error.message;
    $(`status-${index}`).className = "status error";
  } finally {
    busy(-1);
  }
}

async function uploadFile(file) {
  if (!file) return;
  if (state.run && file.size > state.run.max_upload_bytes) {
    say(`${file.name}: ${file.size} bytes is over the ${state.run.max_upload_bytes}-byte limit.`);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  busy(+1);
  try {
    const response = await fetch("/api/upload", {method: "POST", body: form});
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `${response.status}`);
    addSongOption(body.id);
    const index = Math.max(0, state.slots.findIndex((slot) => !slot.song));
    $(`song-${index}`).value = body.id;
    Object.assign(state.slots[index], {song: body.id, info: null, encoded: null});
    $(`bar-${index}`).innerHTML = "";
    showSongInfo(index, body);
    say(`${file.name}: uploaded into corner ${SLOT_NAMES[index]}.`, true);
  } catch (error) {
    say(error.message);
  } finally {
    busy(-1);
  }
}

// ---- blend pad ----------------------------------------------------------------------------

function corners() {
  return state.slots.map((slot, index) => ({slot, index})).filter(({slot}) => slot.encoded);
}

function drawPad() {
  const canvas = $("pad"), context = canvas.getContext("2d");
  const size = canvas.width, loaded = corners();
  context.clearRect(0, 0, size, size);
  context.strokeStyle = "#999";
  context.strokeRect(10, 10, size - 20, size - 20);
  const positions = [[0, 0], [1, 0], [0, 1], [1, 1]];
  loaded.forEach(({slot}, corner) => {
    const [cx, cy] = positions[corner];
    context.fillStyle = "#263238";
    context.font = "12px sans-serif";
    context.textAlign = cx ? "right" : "left";
    const name = slot.song.split("/").pop().replace(/\.midi?$/i, "");
    context.fillText(`${SLOT_NAMES[state.slots.indexOf(slot)]}: ${name.slice(0, 16)}`,
                     cx ? size - 14 : 14, cy ? size - 14 : 24);
  });
  context.textAlign = "left";
  if (loaded.length < 2) {
    context.fillStyle = "#888";
    context.fillText("pick two to four windows", size / 2 - 70, size / 2 - 20);
  }
  const x = 10 + state.puck.x * (size - 20), y = 10 + state.puck.y * (size - 20);
  context.beginPath();
  context.arc(x, y, 10, 0, 2 * Math.PI);
  context.fillStyle = loaded.length >= 2 ? "#ffb300" : "#ccc";
  context.fill();
  context.stroke();
}

const decodeBlend = latestOnly(async (x, y) => {
  const loaded = corners();
  if (loaded.length < 2) return;
  const result = await api("/api/blend", {codes: loaded.map(({slot}) => slot.encoded.code), x, y});
  setCurrent(result, `blend at (${x.toFixed(2)}, ${y.toFixed(2)}) of ` +
             loaded.map(({index}) => SLOT_NAMES[index]).join(", "));
  applyAttributes();
});

function padPointer(event) {
  const canvas = $("pad"), box = canvas.getBoundingClientRect();
  const scale = canvas.width / box.width;
  const clamp = (v) => Math.min(1, Math.max(0, v));
  state.puck = {x: clamp(((event.clientX - box.left) * scale - 10) / (canvas.width - 20)),
                y: clamp(((event.clientY - box.top) * scale - 10) / (canvas.height - 20))};
  drawPad();
  decodeBlend(state.puck.x, state.puck.y);
}

function setUpPad() {
  const canvas = $("pad");
  let dragging = false;
  canvas.addEventListener("pointerdown", (event) => {
    dragging = true;
    canvas.setPointerCapture(event.pointerId);
    padPointer(event);
  });
  canvas.addEventListener("pointermove", (event) => { if (dragging) padPointer(event); });
  canvas.addEventListener("pointerup", () => { dragging = false; });
  drawPad();
}

// ---- genre flower (flower prior) or PCA map (Gaussian prior) ------------------------------

function project(code) {
  const map = state.map;
  if (!map || !code) return null;
  const [u, v] = map.basis;
  let x = 0, y = 0;
  code.forEach((value, i) => { const d = value - map.mean[i]; x += d * u[i]; y += d * v[i]; });
  return [x, y];
}

function flowerScale() {
  if (!state.map || state.map.kind === "flower") return 1.35;
  let extent = 1e-6;
  state.map.points.forEach((p) => { extent = Math.max(extent, Math.abs(p.x), Math.abs(p.y)); });
  return extent * 1.3;
}

function toCanvas(x, y) {
  const canvas = $("flower"), half = canvas.width / 2, scale = half / flowerScale();
  return [half + x * scale, half - y * scale];
}

function fromCanvas(px, py) {
  const canvas = $("flower"), half = canvas.width / 2, scale = half / flowerScale();
  return [(px - half) / scale, (half - py) / scale];
}

function drawFlower() {
  const canvas = $("flower"), context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.map) return;
  context.font = "11px sans-serif";
  if (state.map.kind === "flower") {
    const [cx, cy] = toCanvas(0, 0), [rx] = toCanvas(1, 0);
    context.strokeStyle = "#ccc";
    context.beginPath();
    context.arc(cx, cy, rx - cx, 0, 2 * Math.PI);
    context.stroke();
    state.map.components.forEach((component) => {
      const [px, py] = toCanvas(Math.cos(component.angle), Math.sin(component.angle));
      context.save();
      context.translate(px, py);
      context.rotate(-component.angle);
      context.fillStyle = "rgba(142, 36, 170, 0.18)";
      context.beginPath();
      context.ellipse(0, 0, 22, 7, 0, 0, 2 * Math.PI);
      context.fill();
      context.restore();
      const [lx, ly] = toCanvas(1.2 * Math.cos(component.angle), 1.2 * Math.sin(component.angle));
      context.fillStyle = "#4a148c";
      context.textAlign = "center";
      context.fillText(component.name, lx, ly + 4);
    });
  }
  context.textAlign = "left";
  context.fillStyle = "#90a4ae";
  state.map.points.forEach((p) => {
    const [px, py] = toCanvas(p.x, p.y);
    context.beginPath();
    context.arc(px, py, 3, 0, 2 * Math.PI);
    context.fill();
  });
  const point = flowerDrag || (state.current && project(state.current.code));
  if (point) {
    const [px, py] = toCanvas(point[0], point[1]);
    context.fillStyle = "#ffb300";
    context.strokeStyle = "#333";
    context.beginPath();
    context.arc(px, py, 8, 0, 2 * Math.PI);
    context.fill();
    context.stroke();
  }
}

let flowerDrag = null;

function nearestPetal(x, y) {
  let best = null, bestDistance = Infinity;
  (state.map.components || []).forEach((component) => {
    const d = Math.hypot(x - Math.cos(component.angle), y - Math.sin(component.angle));
    if (d < bestDistance) { best = component; bestDistance = d; }
  });
  return {component: best, distance: bestDistance};
}

const transferTo = latestOnly(async (component) => {
  const result = await api("/api/transfer", {code: state.base.code, component: component.index});
  setCurrent(result, `moved from ${result.source_genre} to ${result.target_genre}`);
  applyAttributes();
});

const samplePrior = latestOnly(async (component) => {
  const temperature = Number($("temperature").value);
  const body = {temperature, seed: Math.floor(Math.random() * 2 ** 31)};
  if (component) body.component = component.index;
  const result = await api("/api/sample", body);
  setCurrent(result, component ? `sample of ${component.name} (temperature ${temperature})`
                               : `prior sample (temperature ${temperature})`);
  applyAttributes();
});

function setUpFlower() {
  const canvas = $("flower");
  const flower = state.run.prior === "flower";
  $("flower-title").textContent = flower ? "Genre flower" : "Latent map (PCA of the songs' codes)";
  $("flower-hint").textContent = flower
      ? "Drag the current code (yellow) onto a petal to move it to that genre; click a petal to sample from it."
      : "Grey: the songs' mean codes; yellow: the current code. This run has a Gaussian prior: sample draws from it.";
  const local = (event) => {
    const box = canvas.getBoundingClientRect(), scale = canvas.width / box.width;
    return fromCanvas((event.clientX - box.left) * scale, (event.clientY - box.top) * scale);
  };
  let down = null;
  canvas.addEventListener("pointerdown", (event) => {
    down = local(event);
    canvas.setPointerCapture(event.pointerId);
    const point = state.current && project(state.current.code);
    flowerDrag = null;
    if (point && Math.hypot(point[0] - down[0], point[1] - down[1]) < 0.15 * flowerScale()) {
      flowerDrag = point;
    }
  });
  canvas.addEventListener("pointermove", (event) => {
    if (flowerDrag) { flowerDrag = local(event); drawFlower(); }
  });
  canvas.addEventListener("pointerup", (event) => {
    const [x, y] = local(event);
    const dragged = flowerDrag;
    flowerDrag = null;
    if (!flower) { drawFlower(); return; }
    const {component, distance} = nearestPetal(x, y);
    const moved = down && Math.hypot(x - down[0], y - down[1]) > 0.05;
    if (dragged && moved && state.base) {
      transferTo(component);
    } else if (down && !moved && distance < 0.35) {
      samplePrior(component);
    }
    down = null;
    drawFlower();
  });
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = $("temperature").value;
  });
  $("sample").addEventListener("click", () => samplePrior(null));
  const genre = $("whole-genre");
  (state.run.components || []).forEach((c) => genre.add(new Option(c.name, c.index)));
  genre.disabled = !flower;
}

// ---- attribute sliders --------------------------------------------------------------------

const decodeAttributes = latestOnly(async () => {
  if (!state.base) return;
  const amounts = Object.fromEntries(Object.entries(state.amounts).filter(([, v]) => v !== 0));
  if (!Object.keys(amounts).length) {
    setCurrent({code: state.base.code, tokens: state.base.tokens}, $("current-caption").textContent, true);
    return;
  }
  const result = await api("/api/attribute", {code: state.base.code, amounts});
  setCurrent(result, "with attributes " + Object.entries(amounts)
             .map(([name, amount]) => `${amount > 0 ? "+" : ""}${amount} ${name}`).join(", "), true);
});

function applyAttributes() {
  if (Object.values(state.amounts).some((v) => v !== 0)) decodeAttributes();
}

function setUpAttributes() {
  const container = $("attributes");
  if (!state.run.attributes.length) {
    container.innerHTML = '<p class="hint">No attribute vectors for this run: compute them with ' +
        "<code>python -m musae_jax.tools.attributes --workdir=RUN</code>.</p>";
    return;
  }
  state.run.attributes.forEach((name) => {
    const label = document.createElement("label");
    label.innerHTML = `<span></span><input type="range" min="-3" max="3" step="0.25" value="0"><output>0</output>`;
    label.querySelector("span").textContent = name;
    const slider = label.querySelector("input"), output = label.querySelector("output");
    slider.addEventListener("input", () => {
      state.amounts[name] = Number(slider.value);
      output.textContent = slider.value;
      decodeAttributes();
    });
    container.appendChild(label);
  });
}

// ---- playback (Tone.js) -------------------------------------------------------------------

const player = {
  playing: false, step: 0, voices: null, repeat: null,

  ensureVoices() {
    if (this.voices) return;
    const out = (gain) => new Tone.Volume(gain).toDestination();
    this.voices = {
      kick: new Tone.MembraneSynth({pitchDecay: 0.03, octaves: 6}).connect(out(-4)),
      tom: new Tone.MembraneSynth({pitchDecay: 0.05, octaves: 2}).connect(out(-10)),
      snare: new Tone.NoiseSynth({noise: {type: "white"},
                                  envelope: {attack: 0.001, decay: 0.15, sustain: 0}}).connect(out(-12)),
      hat: new Tone.MetalSynth({envelope: {attack: 0.001, decay: 0.06, release: 0.01},
                                harmonicity: 5.1, modulationIndex: 32, resonance: 4000,
                                octaves: 1.5}).connect(out(-26)),
      bass: new Tone.MonoSynth({oscillator: {type: "sawtooth"},
                                filter: {Q: 2, type: "lowpass"},
                                envelope: {attack: 0.005, decay: 0.2, sustain: 0.6, release: 0.1},
                                filterEnvelope: {attack: 0.005, decay: 0.15, sustain: 0.3,
                                                 baseFrequency: 120, octaves: 3}}).connect(out(-10)),
      guitar: new Tone.Synth({oscillator: {type: "triangle8"},
                              envelope: {attack: 0.003, decay: 0.3, sustain: 0.2, release: 0.3}}).connect(out(-12)),
      strings: new Tone.Synth({oscillator: {type: "fatsawtooth", count: 3, spread: 20},
                               envelope: {attack: 0.12, decay: 0.2, sustain: 0.8, release: 0.6}}).connect(out(-20)),
    };
  },

  drum(pitch, time) {
    const v = this.voices;
    if (pitch === 35 || pitch === 36) v.kick.triggerAttackRelease("C1", "16n", time);
    else if ([37, 38, 39, 40].includes(pitch)) v.snare.triggerAttackRelease("16n", time);
    else if ([41, 43, 45, 47, 48, 50].includes(pitch)) {
      v.tom.triggerAttackRelease(Tone.Frequency(pitch + 12, "midi"), "8n", time);
    } else v.hat.triggerAttackRelease(pitch === 46 || pitch >= 49 ? "8n" : "32n", time, 0.6);
  },

  tick(time) {
    const tokens = state.current && state.current.tokens;
    if (!tokens) return;
    if (this.step >= tokens.length) {
      if (!$("loop").checked) { Tone.getDraw().schedule(() => this.stop(), time); return; }
      this.step = 0;
    }
    const step = this.step, sixteenth = Tone.Time("16n").toSeconds();
    for (let track = 0; track < 4; track++) {
      const token = tokens[step][track];
      if (token >= SILENT || state.muted[track]) continue;
      if (track === 0) {
        this.drum(token, time);
      } else {
        let length = 1;
        while (step + length < tokens.length && tokens[step + length][track] === HOLD) length++;
        const voice = [null, this.voices.bass, this.voices.guitar, this.voices.strings][track];
        voice.triggerAttackRelease(Tone.Frequency(token, "midi"), length * sixteenth * 0.95, time);
      }
      window.musaeExplorer.notesScheduled += 1;
    }
    this.step += 1;
    Tone.getDraw().schedule(() => drawRoll($("roll-current"), state.current.tokens), time);
  },

  async play() {
    if (!state.current) { say("pick a song or sample a code first."); return; }
    await Tone.start();
    this.ensureVoices();
    const transport = Tone.getTransport();
    if (this.playing) return;
    this.setTempo(Number($("tempo").value));
    this.step = 0;
    this.repeat = transport.scheduleRepeat((time) => this.tick(time), "16n");
    transport.start();
    this.playing = true;
  },

  stop() {
    if (!this.voices) return;
    const transport = Tone.getTransport();
    transport.stop();
    if (this.repeat !== null) transport.clear(this.repeat);
    this.repeat = null;
    this.playing = false;
    if (state.current) drawRoll($("roll-current"), state.current.tokens);
  },

  setTempo(bpm) {
    if (!this.voices || !(bpm >= 30 && bpm <= 300)) return;
    Tone.getTransport().bpm.value = bpm;
  },
};

function setUpPlayer() {
  $("play").addEventListener("click", () => player.play().catch((e) => say(e.message)));
  $("stop").addEventListener("click", () => player.stop());
  $("tempo").addEventListener("change", () => player.setTempo(Number($("tempo").value)));
  state.run.tracks.forEach((track, index) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.addEventListener("change", () => { state.muted[index] = box.checked; });
    label.append(box, ` mute ${track}`);
    $("mutes").appendChild(label);
  });
  $("download").addEventListener("click", () => downloadMidi().catch((e) => say(e.message)));
}

// ---- downloads ----------------------------------------------------------------------------

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function downloadMidi() {
  if (!state.current) { say("nothing to download yet."); return; }
  const blob = await api("/api/midi", {
    tokens: state.current.tokens, programs: state.programs || state.run.default_programs,
    tempo_qpm: Number($("tempo").value) || state.tempo, name: "musae_explorer"});
  saveBlob(blob, "musae_explorer.mid");
}

async function restyleWholeSong() {
  const a = state.slots[0], mode = $("whole-mode").value;
  if (!a.song) { say("pick a song in corner A first."); return; }
  const body = {song: a.song, mode};
  if (mode === "transfer") body.component = Number($("whole-genre").value);
  if (mode === "attribute") {
    body.amounts = Object.fromEntries(Object.entries(state.amounts).filter(([, v]) => v !== 0));
  }
  if (mode === "blend") {
    if (!state.slots[1].encoded) { say("pick a window in corner B first."); return; }
    body.code = state.slots[1].encoded.code;
  }
  busy(+1);
  try {
    const blob = await api("/api/whole_song", body);
    saveBlob(blob, `${a.song.split("/").pop().replace(/\.midi?$/i, "")}_whole_${mode}.mid`);
    say(`whole song restyled (${mode}).`, true);
  } finally {
    busy(-1);
  }
}

// ---- start-up -----------------------------------------------------------------------------

async function start() {
  try {
    state.run = await api("/api/run");
    $("run-info").textContent = `${state.run.workdir}: step ${state.run.step}, ` +
        `${state.run.bars}-bar windows, ${state.run.latent_size}-d codes, ${state.run.prior} prior`;
    state.songs = (await api("/api/songs")).songs;
    buildSlots();
    setUpPad();
    setUpPlayer();
    setUpAttributes();
    setUpFlower();
    $("upload").addEventListener("change", (event) => uploadFile(event.target.files[0]));
    $("whole-go").addEventListener("click", () => restyleWholeSong().catch((e) => say(e.message)));
    busy(+1);
    try {
      state.map = await api("/api/map");
    } finally {
      busy(-1);
    }
    drawFlower();
    document.body.dataset.ready = "true";
  } catch (error) {
    say(`cannot start: ${error.message}`);
  }
}

start();
