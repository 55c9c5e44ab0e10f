// refbert-tf web demo: classify a text with an exported model on MediaPipe Tasks for Web.
// Everything is loaded from the serving folder: MediaPipe from node_modules/ (npm ci), model.tflite and its
// model card model.json beside this page. When loading ends (ready or not) the page sets window.demoReady = true
// and document.body.dataset.state to "ready" or "error"; every message carries a data-code (see README.md).

const MEDIAPIPE = "./node_modules/@mediapipe/tasks-text/text_bundle.mjs";
const WASM_DIR = new URL("./node_modules/@mediapipe/tasks-text/wasm", document.baseURI).href;
const MODEL = "model.tflite";
const CARD = "model.json";
const TASK_NAMES = { cola: "CoLA", sst2: "SST-2", mrpc: "MRPC", stsb: "STS-B", qqp: "QQP", mnli: "MNLI", qnli: "QNLI", rte: "RTE", wnli: "WNLI" };
const MAIN_METRIC = { cola: "mcc", sst2: "accuracy", mrpc: "f1", stsb: "pearson", qqp: "f1", mnli: "accuracy", qnli: "accuracy", rte: "accuracy", wnli: "accuracy" };
const METRIC_NAMES = { accuracy: "accuracy", mcc: "MCC", f1: "F1", pearson: "Pearson", spearman: "Spearman" };
const PAIR_TASKS = ["mrpc", "rte", "stsb", "qqp", "mnli", "qnli", "wnli"];

const $ = (id) => document.getElementById(id);
let classifier = null;
let lowercase = true; // the card's "lowercase"; files with metadata are uncased (the export refuses a cased vocabulary)
let readyMessage = null; // [kind, code, text] shown again after a successful classification

function show(kind, code, text) {
  const box = $("message");
  box.dataset.kind = kind;
  box.dataset.code = code;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.textContent = text;
}

// refbert-tf's tokenizer normalizes as Hugging Face's BertNormalizer does (refbert_tf/tokenization.py): whitespace
// to spaces, control characters dropped, and for uncased models NFD, combining marks stripped, lower-cased. MediaPipe's
// BERT tokenizer only lower-cases, so "cliché" would not become "cliche": normalize here so it sees the same ids.
function bertNormalize(text) {
  let x = text.replace(/[\t\n\r\p{Z}]/gu, " ").replace(/[\p{C}\uFFFD]/gu, "");
  if (lowercase) x = x.normalize("NFD").replace(/\p{Mn}/gu, "").replace(/Σ/g, "σ").toLowerCase();
  return x;
}

function finish(state) {
  document.body.dataset.state = state;
  window.demoReady = true;
}

async function fetchOrNull(url) {
  try {
    const response = await fetch(url, { cache: "no-store" });
    return response.ok ? response : null;
  } catch {
    return null; // opened as file://, or the server went away
  }
}

async function readCard() {
  const response = await fetchOrNull(CARD);
  if (!response) return { card: null, problem: `${CARD} (the model card) was not found beside the page` };
  try {
    return { card: await response.json(), problem: null };
  } catch (error) {
    return { card: null, problem: `${CARD} is not valid JSON (${error.message})` };
  }
}

function showCard(card) {
  if (!card) {
    $("task").textContent = "refbert-tf text classifier";
    $("model-line").textContent = "no model card: task and dev metric unknown";
    return;
  }
  const task = TASK_NAMES[card.task] || card.task || "unknown task";
  $("task").textContent = `${task} · refbert-tf text classifier`;
  document.title = `${task} · refbert-tf web demo`;
  const metrics = card.dev_metrics || {};
  const metric = metrics[MAIN_METRIC[card.task]] !== undefined ? MAIN_METRIC[card.task] : Object.keys(metrics)[0];
  const parts = [metric === undefined ? "dev metric: not in the card" : `dev ${METRIC_NAMES[metric] || metric} ${Number(metrics[metric]).toFixed(2)}%`];
  if (card.model) parts.push(`${card.model} student`);
  if (card.variant) parts.push(card.variant);
  if (card.max_seq_len) parts.push(`max ${card.max_seq_len} tokens`);
  $("model-line").textContent = parts.join(" · ");
  $("model-line").dataset.metric = metric === undefined ? "" : String(metrics[metric]);
}

// TFLite packs the metadata's associated files (vocab.txt, labels.txt) as a zip appended to the flatbuffer: a file
// with metadata ends with a zip end-of-central-directory record, and names its TFLITE_METADATA buffer.
function hasPackedMetadata(bytes) {
  const tail = bytes.subarray(Math.max(0, bytes.length - 65557));
  let zip = false;
  for (let i = tail.length - 22; i >= 0 && !zip; i--) {
    zip = tail[i] === 0x50 && tail[i + 1] === 0x4b && tail[i + 2] === 0x05 && tail[i + 3] === 0x06;
  }
  const name = new TextEncoder().encode("TFLITE_METADATA");
  outer: for (let i = 0; zip && i <= bytes.length - name.length; i++) {
    for (let j = 0; j < name.length; j++) if (bytes[i + j] !== name[j]) continue outer;
    return true;
  }
  return false;
}

function noMetadataText(card, detail) {
  const pair = card && PAIR_TASKS.includes(card.task)
    ? ` ${TASK_NAMES[card.task] || card.task} is a sentence-pair or regression task: those are exported without it, and this demo classifies one text.`
    : " Re-export it with refbert-tf (single-text classifiers get the metadata) and copy the new file.";
  return `${MODEL} has no usable TFLite Model Metadata (the BERT tokenizer, packed vocab.txt and labels.txt that MediaPipe's TextClassifier needs).${pair}${detail ? ` MediaPipe said: ${detail}` : ""}`;
}

async function load() {
  const { card, problem } = await readCard();
  showCard(card);
  lowercase = !card || card.lowercase !== false;

  const response = await fetchOrNull(MODEL);
  if (!response) {
    show("error", "no-model", `No model: ${MODEL} was not found beside the page. Copy an exported single-text classifier here as ${MODEL} and its card as ${CARD} (see README.md), then reload.`);
    return finish("error");
  }
  const bytes = new Uint8Array(await response.arrayBuffer());

  let mediapipe;
  try {
    mediapipe = await import(MEDIAPIPE);
  } catch (error) {
    show("error", "no-runtime", `MediaPipe is not installed: run npm ci in web_demo/ (${error.message}).`);
    return finish("error");
  }
  const started = performance.now();
  try {
    const fileset = await mediapipe.FilesetResolver.forTextTasks(WASM_DIR);
    classifier = await mediapipe.TextClassifier.createFromOptions(fileset, {
      baseOptions: { modelAssetBuffer: bytes },
      maxResults: -1,
    });
    classifier.classify("warm up"); // the first call sets up the interpreter (XNNPACK); keep it out of the latency
  } catch (error) {
    const detail = String(error && error.message ? error.message : error).split("\n")[0];
    if (!hasPackedMetadata(bytes)) show("error", "no-metadata", noMetadataText(card, detail));
    else show("error", "load-failed", `MediaPipe could not load ${MODEL}: ${detail}`);
    return finish("error");
  }
  const ms = performance.now() - started;
  const size = `${(bytes.length / 2 ** 20).toFixed(1)} MB`;
  readyMessage = problem
    ? ["warning", "no-card", `Ready (${MODEL}, ${size}, loaded in ${ms.toFixed(0)} ms), but ${problem}: copy the model's .json card here as ${CARD} to see its task and dev metric.`]
    : ["info", "ready", `Ready: ${MODEL} (${size}) loaded in ${ms.toFixed(0)} ms. Type a text and press Classify.`];
  show(...readyMessage);
  $("classify").disabled = false;
  finish("ready");
}

function clearResult() {
  for (const id of ["label", "score", "latency", "scores"]) {
    $(id).textContent = "–";
    delete $(id).dataset.value;
  }
}

function classify(event) {
  event.preventDefault();
  if (!classifier) return;
  const text = bertNormalize($("text").value);
  const result = $("result");
  if (!text.trim()) {
    clearResult();
    show("error", "empty-text", "Empty text: type a sentence into the box, then press Classify.");
    result.dataset.count = String(Number(result.dataset.count) + 1);
    return;
  }
  let output;
  const started = performance.now();
  try {
    output = classifier.classify(text);
  } catch (error) {
    clearResult();
    show("error", "classify-failed", `MediaPipe could not classify this text: ${error.message}`);
    result.dataset.count = String(Number(result.dataset.count) + 1);
    return;
  }
  const ms = performance.now() - started;
  const categories = [...output.classifications[0].categories].sort((a, b) => a.index - b.index);
  const best = categories.reduce((a, b) => (b.score > a.score ? b : a));
  const top = Math.max(...categories.map((c) => c.score));
  const total = categories.reduce((sum, c) => sum + Math.exp(c.score - top), 0);
  const p = Math.exp(best.score - top) / total;
  $("label").textContent = best.categoryName || String(best.index);
  $("score").textContent = `${best.score.toFixed(3)} (logit), p = ${p.toFixed(3)}`;
  $("score").dataset.value = String(best.score);
  $("latency").textContent = `${ms.toFixed(2)} ms`;
  $("latency").dataset.value = String(ms);
  $("scores").textContent = categories.map((c) => `${c.categoryName}: ${c.score.toFixed(3)}`).join(", ");
  $("scores").dataset.value = JSON.stringify(Object.fromEntries(categories.map((c) => [c.categoryName, c.score])));
  show(...readyMessage);
  result.dataset.count = String(Number(result.dataset.count) + 1);
}

$("form").addEventListener("submit", classify);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("form").requestSubmit();
});
load().catch((error) => {
  show("error", "load-failed", `The demo failed to start: ${error.message}`);
  finish("error");
});
