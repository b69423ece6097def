// Streams GET /generate into the page with EventSource and keeps a status line: tokens so
// far, first-token time (from pressing Generate to the first text, as the user sees it) and
// tokens/s (tokens over the time since pressing Generate). The status element also carries
// the figures (and the number of text events received) as data attributes, which the browser
// test reads.
"use strict";

const form = document.getElementById("form");
const output = document.getElementById("output");
const status = document.getElementById("status");
const generateButton = document.getElementById("generate");
const cancelButton = document.getElementById("cancel");
let source = null;

function setStatus(state, text, figures = {}) {
  status.dataset.state = state;
  for (const [key, value] of Object.entries(figures)) status.dataset[key] = String(value);
  status.textContent = text;
}

function describe(run, now) {
  const seconds = (now - run.started) / 1000;
  const rate = seconds > 0 ? run.tokens / seconds : 0;
  const first = run.firstAt === null ? "-" : `${(run.firstAt - run.started).toFixed(1)} ms`;
  return {
    text: `${run.tokens} tokens · first token ${first} · ${rate.toFixed(0)} tokens/s`,
    figures: {
      tokens: run.tokens,
      firstTokenMs: run.firstAt === null ? "" : (run.firstAt - run.started).toFixed(3),
      tokensPerS: rate.toFixed(1),
    },
  };
}

function stopStream() {
  if (source !== null) source.close(); // the server sees the disconnect and cancels
  source = null;
  generateButton.disabled = false;
  cancelButton.disabled = true;
}

// A request the server refused (400) closes the EventSource at once: fetch the same URL to
// show why (a refused request starts no generation, so this runs nothing twice).
async function showRefusal(url) {
  try {
    const response = await fetch(url);
    const body = await response.json();
    setStatus("error", `error: ${body.error}`);
  } catch (e) {
    setStatus("error", "error: the server could not be reached");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  stopStream();
  output.textContent = "";
  const params = new URLSearchParams({
    prompt: form.prompt.value,
    max_tokens: form.max_tokens.value,
    seed: form.seed.value,
  });
  if (form.stop.value !== "") params.append("stop", form.stop.value);
  const url = `generate?${params}`;
  const run = { started: performance.now(), firstAt: null, tokens: 0, events: 0, received: false };
  setStatus("waiting", "waiting for the first token…",
            { tokens: 0, events: 0, firstTokenMs: "", tokensPerS: "", finishReason: "" });
  generateButton.disabled = true;
  cancelButton.disabled = false;
  const stream = new EventSource(url);
  source = stream;

  stream.onmessage = (message) => {
    const data = JSON.parse(message.data);
    const now = performance.now();
    if (run.firstAt === null && data.text !== "") run.firstAt = now;
    run.received = true;
    run.tokens += data.tokens ?? 0;
    run.events += 1;
    output.append(data.text);
    const line = describe(run, now);
    setStatus("streaming", line.text, { ...line.figures, events: run.events });
  };
  stream.addEventListener("done", (message) => {
    const summary = JSON.parse(message.data);
    const line = describe(run, performance.now());
    stopStream();
    const server = summary.first_token_s == null ? "" :
      ` (engine: ${(summary.first_token_s * 1000).toFixed(1)} ms)`;
    setStatus("done", `${line.text}${server} · finished: ${summary.finish_reason}`,
              { ...line.figures, finishReason: summary.finish_reason });
  });
  stream.addEventListener("error", (message) => {
    if (message.data) { // the server's own `event: error`
      stopStream();
      setStatus("error", `error: ${JSON.parse(message.data).error}`);
    } else if (source === stream) { // the connection failed: do not let EventSource retry
      const refused = !run.received && stream.readyState === EventSource.CLOSED;
      stopStream();
      if (refused) showRefusal(url);
      else setStatus("error", "error: the connection was lost");
    }
  });
});

cancelButton.addEventListener("click", () => {
  stopStream();
  setStatus("stopped", `${status.textContent} · stopped`);
});
